"""`policy-ner`: the command line, one module per command group, each command a few lines over the
library. Modules here import only light parts of the package at the top; torch, transformers,
datasets and numba load inside the commands that need them, so that `annotations validate`,
`models list` or `evaluate` of a prediction file start quickly (tests/test_architecture.py).

argparse rather than typer: it is the standard library, costs nothing at start-up, and its
subcommands, choices and epilogs are all this command line needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..config import ConfigError
from ..labelstudio.exports import AnnotationError
from ..labelstudio.sync import LabelStudioError
from ..scoring import EvaluationInputError
from . import config, data, evaluate, exports, labelstudio, models, predict, train

GROUPS = (exports, labelstudio, train, evaluate, predict, models, data, config)
USER_ERRORS = (
    AnnotationError,
    ConfigError,
    EvaluationInputError,
    FileNotFoundError,
    FileExistsError,
    ValueError,
    LabelStudioError,
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policy-ner",
        description="Entities in Chinese policy documents: annotations in Label Studio, "
        "training, evaluation, comparison and batch prediction.",
        epilog="example: policy-ner train "
        "configs/default.yaml; policy-ner COMMAND --help shows each command's options and an example.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser
