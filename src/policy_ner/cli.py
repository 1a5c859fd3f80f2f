"""`policy-ner` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .annotations import AnnotationError, Span, compute_stats, load_documents, read_exports
from .config import ConfigError, load_config
from .corpus import verify_manifest
from .evaluation import EvaluationInputError, PredictedDocument, evaluate
from .files import atomic_write_text
from .inference import Predictor, prediction_record, read_predictions, read_text_inputs
from .labelstudio import labeling_config
from .reporting import scores_table, write_evaluation

DEFAULT_CONFIG = "configs/default.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (AnnotationError, ConfigError, EvaluationInputError, FileNotFoundError, FileExistsError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="policy-ner", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    annotations = commands.add_parser("annotations", help="check and summarise Label Studio exports")
    annotation_commands = annotations.add_subparsers(required=True, metavar="ACTION")
    for name, handler, help_text in (("validate", cmd_validate, "report every problem in the exports"),
                                     ("stats", cmd_stats, "spans per label and document, span lengths")):
        sub = annotation_commands.add_parser(name, help=help_text)
        sub.add_argument("files", nargs="+", type=Path, metavar="FILE")
        sub.add_argument("--config", default=DEFAULT_CONFIG, help="config whose label set applies")
        sub.set_defaults(handler=handler)
        if name == "stats":
            sub.add_argument("--json", action="store_true", help="print JSON instead of tables")

    ls = commands.add_parser("ls", help="Label Studio helpers")
    ls_commands = ls.add_subparsers(required=True, metavar="ACTION")
    ls_config = ls_commands.add_parser("config", help="write the labelling config XML for the label set")
    ls_config.add_argument("--config", default=DEFAULT_CONFIG)
    ls_config.add_argument("--output", type=Path, help="file to write (default: standard output)")
    ls_config.set_defaults(handler=cmd_ls_config)

    train = commands.add_parser("train", help="fine-tune a model from a YAML config")
    train.add_argument("config", type=Path)
    train.add_argument("--version", help="model version name (default: timestamp-configname)")
    train.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    train.add_argument("--models-dir", type=Path, help="where models/<version>/ goes (default ROOT/models)")
    train.add_argument("--runs-dir", type=Path, help="where training/<version>/ goes (default ROOT/training)")
    train.set_defaults(handler=cmd_train)

    evaluate_cmd = commands.add_parser("evaluate", help="score a model or a prediction file against gold exports")
    evaluate_cmd.add_argument("model", type=Path, metavar="MODEL_DIR_OR_PREDICTIONS_JSONL")
    evaluate_cmd.add_argument("exports", nargs="+", type=Path, metavar="EXPORT.json")
    evaluate_cmd.add_argument("--output", type=Path, help="report folder (default eval/<model version>/)")
    evaluate_cmd.add_argument("--split", choices=("all", "dev", "train"), default="all",
                              help="score only the model's dev or train documents (from its model card)")
    evaluate_cmd.add_argument("--config", default=DEFAULT_CONFIG,
                              help="label set when scoring a prediction file")
    evaluate_cmd.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="find entities in .txt files or folders of them")
    predict.add_argument("model", type=Path, metavar="MODEL_DIR")
    predict.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    predict.add_argument("--output", type=Path, required=True, metavar="OUT.jsonl")
    predict.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    predict.set_defaults(handler=cmd_predict)

    data = commands.add_parser("data", help="raw document manifest")
    data_commands = data.add_subparsers(required=True, metavar="ACTION")
    verify = data_commands.add_parser("verify", help="check data/ files against the manifest's sha256")
    verify.add_argument("manifest", type=Path, nargs="?", default=Path("data/manifest.csv"))
    verify.set_defaults(handler=cmd_data_verify)
    return parser


def cmd_validate(args) -> int:
    config = load_config(args.config)
    reading = read_exports(args.files, config.labels)
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
    reading = read_exports(args.files, config.labels)
    reading.raise_for_issues()
    stats = compute_stats(reading.documents, config.labels)
    if args.json:
        print(json.dumps(stats.__dict__, ensure_ascii=False, indent=2))
        return 0
    print(f"{stats.documents} documents, {stats.characters:,} characters, "
          f"{sum(stats.spans_per_label.values())} spans")
    print("\nspans per label:")
    for label, count in stats.spans_per_label.items():
        print(f"  {label:<20} {count:>6}")
    print("\nspan length (characters):")
    print(f"  {'label':<20} {'min':>5} {'median':>7} {'mean':>7} {'max':>5}")
    for label, row in stats.span_length.items():
        print(f"  {label:<20} {row['min']:>5} {row['median']:>7} {row['mean']:>7} {row['max']:>5}")
    print("\nspans per document:")
    print(f"  {'doc_id':<28}" + "".join(f"{label:>16}" for label in config.labels))
    for doc_id, counts in stats.spans_per_document.items():
        print(f"  {doc_id:<28}" + "".join(f"{counts[label]:>16}" for label in config.labels))
    return 0


def cmd_ls_config(args) -> int:
    xml = labeling_config(load_config(args.config).labels)
    if args.output:
        atomic_write_text(args.output, xml)
        print(f"wrote {args.output}")
    else:
        print(xml, end="")
    return 0


def cmd_train(args) -> int:
    from .training import train  # torch and transformers load only for commands that need them

    config = load_config(args.config)
    result = train(config, root=args.root, config_path=args.config, models_dir=args.models_dir,
                   runs_dir=args.runs_dir, version=args.version, log=lambda m: print(m, flush=True))
    if result.dev_metrics:
        print(f"\ndev metrics ({len(result.split.dev)} documents, strict entity level):")
        print(scores_table(result.dev_metrics))
    print(f"\nmodel: {result.model_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from .training import predict_documents, read_model_card

    if args.model.is_dir():
        predictor = Predictor.from_pretrained(args.model)
        labels, version = predictor.labels, predictor.version
        card = read_model_card(args.model)
    else:
        predictor, card = None, {}
        labels, version = load_config(args.config).labels, args.model.stem
    gold = load_documents(args.exports, labels)
    if args.split != "all":
        if not card:
            raise ValueError("--split needs a model directory with a model card")
        wanted = set(card["data"][f"{args.split}_documents"])
        gold = [doc for doc in gold if doc.doc_id in wanted]
        if not gold:
            raise ValueError(f"none of the model's {args.split} documents are in {', '.join(map(str, args.exports))}")
    if predictor is not None:
        predicted = predict_documents(predictor, gold)
    else:
        predicted = {r["doc_id"]: PredictedDocument(r["doc_id"], r["text"], tuple(
            Span(e["start"], e["end"], e["label"]) for e in r["entities"])) for r in read_predictions(args.model)}
    result = evaluate(gold, predicted, labels)
    output = args.output or Path("eval") / version
    context = {"model": version, "base_model": card.get("base_model"), "split": args.split,
               "gold_files": [str(p) for p in args.exports],
               "command": "policy-ner " + " ".join(sys.argv[1:])}
    paths = write_evaluation(result, output, context)
    print(scores_table(result))
    print(f"\nseqeval default-mode micro F1 (diagnostic): {result.default_mode_micro_f1:.3f}")
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


def cmd_predict(args) -> int:
    predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size)
    documents = list(read_text_inputs(args.inputs))
    lines, entity_count = [], 0
    for start in range(0, len(documents), 32):
        chunk = documents[start:start + 32]
        for (doc_id, text, _), entities in zip(chunk, predictor.predict([text for _, text, _ in chunk])):
            lines.append(json.dumps(prediction_record(doc_id, text, entities), ensure_ascii=False) + "\n")
            entity_count += len(entities)
    atomic_write_text(args.output, "".join(lines))
    print(f"wrote {args.output}: {len(documents)} documents, {entity_count} entities")
    return 0


def cmd_data_verify(args) -> int:
    problems = verify_manifest(args.manifest)
    for problem in problems:
        print(problem)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
