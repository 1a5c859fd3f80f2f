"""`policy-ner ls config|push|pull`: the labelling config, and the round trip with a live Label Studio."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_config
from ..files import atomic_write_text
from ..labelstudio.formats import labeling_config
from ..labelstudio.sync import API_KEY_ENV, ORDERS, format_pull, format_push, pull, push, resolve_api_key
from ..types import Document
from .common import command, config_option, group


def register(commands) -> None:
    actions = group(commands, "ls", "Label Studio: the labelling config, push documents, pull annotations")
    config = command(
        actions,
        "config",
        "write the labelling config XML for the label set",
        "policy-ner ls config --output annotations/labeling_config.xml",
    )
    config_option(config)
    config.add_argument("--output", type=Path, help="file to write (default: standard output)")
    config.set_defaults(handler=cmd_config)

    push_cmd = command(
        actions,
        "push",
        "import documents as tasks, with the model's pre-annotations",
        "policy-ner ls push data/raw --url http://127.0.0.1:8080 --project policy-ner "
        "--model models/<version> --order uncertainty",
    )
    _server_options(push_cmd)
    push_cmd.add_argument(
        "documents",
        nargs="+",
        type=Path,
        metavar="DOCS",
        help=".txt files or folders of them (doc id = file name without .txt)",
    )
    push_cmd.add_argument("--model", type=Path, metavar="MODEL_DIR", help="attach this model's predictions")
    push_cmd.add_argument(
        "--order",
        choices=ORDERS,
        default="input",
        help="import order of new tasks; uncertainty: least sure first (needs --model)",
    )
    push_cmd.set_defaults(handler=cmd_push)

    pull_cmd = command(
        actions,
        "pull",
        "export the project's annotations, validate and save them",
        "policy-ner ls pull --url http://127.0.0.1:8080 --project policy-ner --output annotations/corpus-v2.json",
    )
    _server_options(pull_cmd)
    pull_cmd.add_argument("--output", type=Path, required=True, metavar="annotations/NAME-vN.json")
    pull_cmd.add_argument(
        "--previous",
        type=Path,
        metavar="EXPORT.json",
        help="version to diff against (default: OUTPUT itself with --overwrite, else the highest NAME-vM.json "
        "below N beside OUTPUT)",
    )
    pull_cmd.add_argument(
        "--overwrite", action="store_true", help="replace an existing OUTPUT (default: refuse, naming the next version)"
    )
    pull_cmd.set_defaults(handler=cmd_pull)


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="Label Studio address, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--api-key", help=f"API token (default: ${API_KEY_ENV}, which keeps it out of your shell history)"
    )
    parser.add_argument("--project", required=True, metavar="NAME", help="project title")
    config_option(parser)


def cmd_config(args) -> int:
    xml = labeling_config(load_config(args.config).labels)
    if args.output:
        atomic_write_text(args.output, xml)
        print(f"wrote {args.output}")
    else:
        print(xml, end="")
    return 0


def cmd_push(args) -> int:
    from ..model.predictor import Predictor
    from ..predict.inputs import read_all_documents

    labels = load_config(args.config).labels
    api_key = resolve_api_key(args.api_key)
    documents = [Document(d.doc_id, d.text, source=d.source) for d in read_all_documents(args.documents)]
    predictor = Predictor.from_pretrained(args.model) if args.model else None
    result = push(args.url, api_key, args.project, documents, labels, predictor=predictor, order=args.order)
    print("\n".join(format_push(result, labels)))
    return 0


def cmd_pull(args) -> int:
    config = load_config(args.config)
    result = pull(
        args.url,
        resolve_api_key(args.api_key),
        args.project,
        args.output,
        config.labels,
        previous=args.previous,
        overwrite=args.overwrite,
        edge_punctuation=config.data.edge_punctuation,
    )
    print("\n".join(format_pull(result)))
    return 0
