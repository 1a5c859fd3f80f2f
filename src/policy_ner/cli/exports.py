"""`policy-ner annotations validate|stats|import`: check and summarise Label Studio exports (gold
annotations), and turn other NER data sets into such exports."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from ..config import load_config
from ..labelstudio.exports import AnnotationError, compute_stats, read_exports
from ..labelstudio.imports import FORMATS, ForeignDataError, import_documents, write_export
from .common import command, config_option, group


def register(commands) -> None:
    actions = group(commands, "annotations", "check and summarise Label Studio exports")
    validate = command(
        actions, "validate", "report every problem in the exports", "policy-ner annotations validate annotations/*.json"
    )
    stats = command(
        actions,
        "stats",
        "spans per label and document, span lengths",
        "policy-ner annotations stats annotations/corpus-v1.json --json",
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    for parser, handler in ((validate, cmd_validate), (stats, cmd_stats)):
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        config_option(parser)
        parser.set_defaults(handler=handler)
    register_import(actions)


def register_import(actions) -> None:
    parser = command(
        actions,
        "import",
        "convert a character-tagged (BIO/BIOES/BMES) or CLUENER file into a Label Studio export",
        "policy-ner annotations import msra/train.bio --format bio --map ORG=ORG --pack-chars 500 --output msra.json",
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("--format", choices=FORMATS, default="bio")
    parser.add_argument("--output", type=Path, required=True, help="the export to write (refused if it exists)")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        type=label_pair,
        metavar="SRC=DST",
        help="rename label SRC to DST; when any --map is given, labels without one are dropped (and counted)",
    )
    parser.add_argument(
        "--pack-chars", type=int, default=0, help="join consecutive sentences into documents of about N characters"
    )
    parser.add_argument(
        "--require", action="append", default=[], metavar="LABEL", help="keep only sentences with LABEL"
    )
    parser.add_argument("--id-prefix", help="doc id prefix (default: the file's name)")
    parser.set_defaults(handler=cmd_import)


def label_pair(text: str) -> tuple[str, str]:
    source, equals, target = text.partition("=")
    if not (equals and source and target):
        raise argparse.ArgumentTypeError(f"expected SRC=DST, got {text!r}")
    return source, target


def cmd_import(args) -> int:
    if args.output.exists():
        print(f"error: {args.output} exists; choose another name (exports are versioned, never overwritten)")
        return 2
    try:
        documents, summary = import_documents(
            args.file,
            args.format,
            mapping=dict(args.map) or None,
            max_chars=args.pack_chars,
            id_prefix=args.id_prefix,
            require_labels=args.require,
        )
        write_export(documents, summary.kept, args.output)
    except (OSError, UnicodeDecodeError, ForeignDataError) as exc:
        print(f"error: {exc}")
        return 1
    except AnnotationError as exc:
        for issue in exc.issues:
            print(issue)
        print(f"INVALID: {len(exc.issues)} problem(s); nothing written")
        return 1
    print(
        f"{args.output}: {len(documents)} documents from {summary.sentences} sentences, {summary.characters:,} characters"
    )
    print(f"spans kept: {summary.describe(summary.kept) or 'none'}")
    if summary.dropped:
        print(f"spans dropped (no --map): {summary.describe(summary.dropped)}")
    return 0


def cmd_validate(args) -> int:
    config = load_config(args.config)
    reading = read_exports(args.files, config.labels, config.data.edge_punctuation)
    for issue in reading.issues:
        print(issue)
    for task in reading.unannotated_tasks:
        print(f"note: {task}: no completed annotation (predictions only, cancelled or empty); not gold")
    for override in reading.overridden:
        print(f"note: doc {override}: the later file's annotation is used")
    spans = sum(len(d.spans) for d in reading.documents)
    status = "INVALID" if reading.issues else "OK"
    print(f"{status}: {len(reading.documents)} documents, {spans} spans, {len(reading.issues)} problem(s)")
    return 1 if reading.issues else 0


def cmd_stats(args) -> int:
    config = load_config(args.config)
    labels = config.labels
    reading = read_exports(args.files, labels, config.data.edge_punctuation)
    reading.raise_for_issues()
    stats = compute_stats(reading.documents, labels)
    if args.json:
        print(json.dumps(asdict(stats), ensure_ascii=False, indent=2))
        return 0
    print(f"{stats.documents} documents, {stats.characters:,} characters, {sum(stats.spans_per_label.values())} spans")
    print("\nspans per label:")
    for label, count in stats.spans_per_label.items():
        print(f"  {label:<20} {count:>6}")
    print("\nspan length (characters):")
    print(f"  {'label':<20} {'min':>5} {'median':>7} {'mean':>7} {'max':>5}")
    for label, row in stats.span_length.items():
        print(f"  {label:<20} {row['min']:>5} {row['median']:>7} {row['mean']:>7} {row['max']:>5}")
    print("\nspans per document:")
    print(f"  {'doc_id':<28}" + "".join(f"{label:>16}" for label in labels))
    for doc_id, counts in stats.spans_per_document.items():
        print(f"  {doc_id:<28}" + "".join(f"{counts[label]:>16}" for label in labels))
    return 0
