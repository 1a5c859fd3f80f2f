"""`policy-ner config check|schema`: validate a training config, or write its JSON Schema for editors."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import json_schema, load_config
from ..files import atomic_write_text
from .common import command, group


def register(commands) -> None:
    actions = group(commands, "config", "training configs: check one, or the JSON Schema for editors")
    check = command(
        actions,
        "check",
        "validate a config and print it with every default filled in",
        "policy-ner config check configs/default.yaml",
    )
    check.add_argument("config", type=Path)
    check.set_defaults(handler=cmd_check)
    schema = command(
        actions,
        "schema",
        "write the JSON Schema of training configs",
        "policy-ner config schema --output configs/schema.json",
    )
    schema.add_argument("--output", type=Path, help="file to write (default: standard output)")
    schema.set_defaults(handler=cmd_schema)


def cmd_check(args) -> int:
    print(json.dumps(load_config(args.config).to_dict(), ensure_ascii=False, indent=2))
    return 0


def cmd_schema(args) -> int:
    text = json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
