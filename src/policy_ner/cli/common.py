"""What several command groups share: the default config, command parsers with an example, and how a
command records itself."""

from __future__ import annotations

import argparse
import shlex

DEFAULT_CONFIG = "configs/default.yaml"


def command(commands, name: str, help: str, example: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with an example invocation."""
    return commands.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def group(commands, name: str, help: str):
    """A command group (`policy-ner NAME ACTION`)."""
    return commands.add_parser(name, help=help, description=help).add_subparsers(required=True, metavar="ACTION")


def config_option(parser: argparse.ArgumentParser, what: str = "config whose label set applies") -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"{what} (default {DEFAULT_CONFIG})")


def invocation(args) -> str:
    """The command line as typed, for the reports that record how they were made."""
    return shlex.join(["policy-ner", *args.argv])


def log(message: str) -> None:
    print(message, flush=True)
