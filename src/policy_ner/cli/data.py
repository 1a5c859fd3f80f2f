"""`policy-ner data verify`: the raw documents against their manifest."""

from __future__ import annotations

from pathlib import Path

from ..corpus import verify_manifest
from .common import command, group


def register(commands) -> None:
    actions = group(commands, "data", "raw document manifest")
    verify = command(
        actions, "verify", "check data/ files against the manifest's sha256", "policy-ner data verify data/manifest.csv"
    )
    verify.add_argument("manifest", type=Path, nargs="?", default=Path("data/manifest.csv"))
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(args) -> int:
    problems = verify_manifest(args.manifest)
    for problem in problems:
        print(problem)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0
