"""`policy-ner annotations validate|stats`: check and summarise Label Studio exports (gold annotations)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ..config import load_config
from ..labelstudio.exports import compute_stats, read_exports
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


def cmd_validate(args) -> int:
    reading = read_exports(args.files, load_config(args.config).labels)
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
    labels = load_config(args.config).labels
    reading = read_exports(args.files, labels)
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
