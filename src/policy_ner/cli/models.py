"""`policy-ner models list`: the model registry, read from the model cards alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..files import partial_folders
from ..model.registry import describe_partial, list_models, models_table
from .common import command, group


def register(commands) -> None:
    actions = group(commands, "models", "the model registry")
    listing = command(
        actions, "list", "every version in models/ with its card's facts", "policy-ner models list --json"
    )
    listing.add_argument("--models-dir", type=Path, default=Path("models"))
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=cmd_list)


def cmd_list(args) -> int:
    entries = list_models(args.models_dir)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=2))
    elif not entries:
        print(f"no model versions in {args.models_dir}")
    else:
        print(models_table(entries))
    for folder in partial_folders(args.models_dir):
        print(f"note: {describe_partial(folder)}", file=sys.stderr)
    return 0
