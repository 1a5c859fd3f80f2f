"""`policy-ner` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from ..labelstudio.exports import AnnotationError, compute_stats, load_documents, read_exports, resolve_annotation_files
from ..evaluate.comparison import compare_systems, open_source, select_documents, source_predictions, unique_names
from ..config import ConfigError, load_config
from ..corpus import verify_manifest
from ..predict.batch import EXIT_SKIPPED
from ..predict.inputs import DEFAULT_GLOB, INPUT_FORMATS
from ..predict.outputs import OUTPUT_FORMATS
from ..evaluate.evaluation import build_report
from ..scoring import EvaluationInputError
from ..files import atomic_write_text, sha256_file
from ..labelstudio.formats import labeling_config
from ..labelstudio.sync import API_KEY_ENV, LabelStudioError, ORDERS
from ..model.runtimes import RUNTIMES
from ..model.registry import list_models, models_table
from ..evaluate.report import write_comparison, write_evaluation
from ..scoring import scores_table

DEFAULT_CONFIG = "configs/default.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except (AnnotationError, ConfigError, EvaluationInputError, FileNotFoundError, FileExistsError,
            ValueError, LabelStudioError) as exc:
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
    ls_push = ls_commands.add_parser("push", help="import documents as tasks, with the model's pre-annotations")
    _server_options(ls_push)
    ls_push.add_argument("documents", nargs="+", type=Path, metavar="DOCS",
                         help=".txt files or folders of them (doc id = file name without .txt)")
    ls_push.add_argument("--model", type=Path, metavar="MODEL_DIR", help="attach this model's predictions")
    ls_push.add_argument("--order", choices=ORDERS, default="input",
                         help="import order of new tasks; uncertainty: least sure first (needs --model)")
    ls_push.set_defaults(handler=cmd_ls_push)
    ls_pull = ls_commands.add_parser("pull", help="export the project's annotations, validate and save them")
    _server_options(ls_pull)
    ls_pull.add_argument("--output", type=Path, required=True, metavar="annotations/NAME-vN.json")
    ls_pull.add_argument("--previous", type=Path, metavar="EXPORT.json",
                         help="version to diff against (default: the highest NAME-vM.json below N beside OUTPUT)")
    ls_pull.set_defaults(handler=cmd_ls_pull)

    train = commands.add_parser("train", help="fine-tune a model from a YAML config")
    train.add_argument("config", type=Path)
    train.add_argument("--version", help="model version name (default: timestamp-configname)")
    train.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    train.add_argument("--models-dir", type=Path, help="where models/<version>/ goes (default ROOT/models)")
    train.add_argument("--runs-dir", type=Path, help="where training/<version>/ goes (default ROOT/training)")
    train.set_defaults(handler=cmd_train)

    pretrain = commands.add_parser("pretrain", help="masked-language-model pretraining of the config's encoder "
                                                    "on the project's raw texts (and --corpus); fine-tune with "
                                                    "model.base: OUTPUT")
    pretrain.add_argument("config", type=Path)
    pretrain.add_argument("--output", type=Path, required=True, help="checkpoint folder to write (must not exist)")
    pretrain.add_argument("--corpus", type=Path, help="JSONL corpus to pretrain on besides the project's texts "
                                                      "(make pretrain-corpus writes data/pretrain/corpus.jsonl)")
    length = pretrain.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=0, help="optimizer steps (default: from --epochs)")
    length.add_argument("--epochs", type=float, default=20.0, help="passes over the windows (default 20)")
    pretrain.add_argument("--batch-size", type=int, default=32)
    pretrain.add_argument("--learning-rate", type=float, default=1e-3)
    pretrain.add_argument("--warmup-ratio", type=float, default=0.05)
    pretrain.add_argument("--mask-probability", type=float, default=0.15)
    pretrain.add_argument("--whole-word", action="store_true", help="mask whole jieba words, not single characters")
    pretrain.add_argument("--corpus-min-char-count", type=int, default=5,
                          help="corpus characters seen fewer times stay out of a scratch vocabulary (default 5)")
    pretrain.add_argument("--run-dir", type=Path, help="checkpoint, log and tokenized data (default OUTPUT.run)")
    pretrain.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)")
    pretrain.add_argument("--log-every", type=int, default=50, help="steps between log lines (default 50)")
    pretrain.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    pretrain.add_argument("--threads", type=int, help="torch threads (default: the config's train.threads)")
    pretrain.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    pretrain.set_defaults(handler=cmd_pretrain)

    cv = commands.add_parser("cv", help="k-fold cross-validation by document: the config's model and the "
                                         "baselines, strict and overlap F1 as mean ± std over folds")
    cv.add_argument("config", type=Path)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--seed", type=int, default=13, help="salt of the fold assignment's tie-break")
    cv.add_argument("--baselines", default="wordlist,crf,lac",
                    help="comma-separated baselines to score on the same folds (wordlist, crf, lac; '' for none)")
    cv.add_argument("--no-model", action="store_true", help="score the baselines only")
    cv.add_argument("--group-by", choices=("group", "doc"), default="group",
                    help="keep each source-document group of the manifest (data.manifest) in one fold (default), "
                         "or fold single documents as before groups existed")
    cv.add_argument("--leave-out", choices=("genre",),
                    help="one fold per genre of the manifest instead of --folds (output eval/cv-<name>-genre/)")
    cv.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    cv.add_argument("--output", type=Path, help="folder for cv.md, cv.json and predictions (default eval/cv-<name>/)")
    cv.set_defaults(handler=cmd_cv)

    evaluate_cmd = commands.add_parser(
        "evaluate", help="score a model or a prediction file against gold exports; writes report.{json,md,html}")
    evaluate_cmd.add_argument("model", type=Path, metavar="MODEL_DIR_OR_PREDICTIONS_JSONL")
    evaluate_cmd.add_argument("exports", nargs="+", type=Path, metavar="EXPORT.json")
    evaluate_cmd.add_argument("--output", type=Path, help="report folder (default eval/<model version>/)")
    evaluate_cmd.add_argument("--split", choices=("all", "dev", "train"), default="all",
                              help="score only the model's dev or train documents (from its model card)")
    evaluate_cmd.add_argument("--config", default=DEFAULT_CONFIG,
                              help="label set when scoring a prediction file")
    _bootstrap_options(evaluate_cmd)
    evaluate_cmd.set_defaults(handler=cmd_evaluate)

    compare = commands.add_parser("compare", help="compare versions (model directories or prediction files) "
                                                  "on the same gold documents")
    compare.add_argument("systems", nargs="+", type=Path, metavar="VERSION",
                         help="two or more model directories or prediction JSONL files (A B [C ...]); "
                              "the first is the baseline")
    compare.add_argument("--on", nargs="+", type=Path, required=True, metavar="EXPORT.json", dest="exports",
                         help="gold Label Studio export(s)")
    compare.add_argument("--output", type=Path, help="report folder (default eval/compare-<A>-vs-<B>/)")
    compare.add_argument("--split", choices=("all", "dev", "train"), default="all",
                         help="only documents every model directory lists under this split in its card")
    compare.add_argument("--config", default=DEFAULT_CONFIG, help="label set when only prediction files are given")
    _bootstrap_options(compare)
    compare.set_defaults(handler=cmd_compare)

    models = commands.add_parser("models", help="the model registry")
    models_commands = models.add_subparsers(required=True, metavar="ACTION")
    models_list = models_commands.add_parser("list", help="every version in models/ with its card's facts")
    models_list.add_argument("--models-dir", type=Path, default=Path("models"))
    models_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models_list.set_defaults(handler=cmd_models_list)

    predict = commands.add_parser(
        "predict", help="find entities in .txt files, folders, JSONL files or standard input ('-'); "
                        f"exit status {EXIT_SKIPPED} when some inputs were skipped")
    predict.add_argument("model", type=Path, metavar="MODEL_DIR")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder, JSONL file, or - for standard input")
    predict.add_argument("--output", type=Path, required=True, metavar="OUT",
                         help="OUT.jsonl, OUT.csv (one row per entity) or OUT.json (Label Studio tasks)")
    predict.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: from OUT's suffix)")
    predict.add_argument("--resume", action="store_true", help="continue OUT: skip the documents already in it")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    predict.add_argument("--glob", default=DEFAULT_GLOB, help=f"files to read in folders (default {DEFAULT_GLOB})")
    predict.add_argument("--input-format", choices=INPUT_FORMATS, default="auto",
                         help="auto: .jsonl files are JSONL, anything else (and standard input) one text document")
    predict.add_argument("--text-field", default="text", help="JSONL field holding the text (default text)")
    predict.add_argument("--id-field", default="doc_id", help="JSONL field holding the doc id (default doc_id)")
    predict.add_argument("--runtime", choices=RUNTIMES, default="torch",
                         help="torch, or ONNX Runtime on the export-onnx files (fp32 or INT8)")
    predict.add_argument("--onnx-dir", type=Path, help="folder of the export-onnx files (default MODEL_DIR/onnx)")
    predict.add_argument("--threads", type=int, default=0,
                         help="threads in all (default 0: one per available core); the feature stage and the "
                              "network share them")
    predict.add_argument("--no-overlap", action="store_true",
                         help="encode a batch only after the previous one is written (one stage at a time, "
                              "each with all the threads)")
    predict.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    predict.add_argument("--quiet", action="store_true", help="no progress line on standard error")
    predict.set_defaults(handler=cmd_predict)

    export = commands.add_parser("export-onnx", help="write MODEL_DIR/onnx/model.onnx and its dynamically "
                                                     "quantized INT8 twin model.int8.onnx for predict --runtime")
    export.add_argument("model", type=Path, metavar="MODEL_DIR")
    export.add_argument("--output", type=Path, metavar="DIR", help="folder to write (default MODEL_DIR/onnx)")
    export.set_defaults(handler=cmd_export_onnx)

    data = commands.add_parser("data", help="raw document manifest")
    data_commands = data.add_subparsers(required=True, metavar="ACTION")
    verify = data_commands.add_parser("verify", help="check data/ files against the manifest's sha256")
    verify.add_argument("manifest", type=Path, nargs="?", default=Path("data/manifest.csv"))
    verify.set_defaults(handler=cmd_data_verify)
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="Label Studio address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--api-key", help=f"API token (default: ${API_KEY_ENV}, which keeps it out of your "
                                          f"shell history)")
    parser.add_argument("--project", required=True, metavar="NAME", help="project title")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="config whose label set applies")


def _bootstrap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap samples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


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


def cmd_ls_push(args) -> int:
    from ..types import Document
    from ..predict.inputs import read_all_documents
    from ..model.predictor import Predictor
    from ..labelstudio.sync import format_push, push, resolve_api_key

    labels = load_config(args.config).labels
    api_key = resolve_api_key(args.api_key)
    documents = [Document(d.doc_id, d.text, source=d.source) for d in read_all_documents(args.documents)]
    predictor = Predictor.from_pretrained(args.model) if args.model else None
    result = push(args.url, api_key, args.project, documents, labels, predictor=predictor, order=args.order)
    print("\n".join(format_push(result, labels)))
    return 0


def cmd_ls_pull(args) -> int:
    from ..labelstudio.sync import format_pull, pull, resolve_api_key

    labels = load_config(args.config).labels
    result = pull(args.url, resolve_api_key(args.api_key), args.project, args.output, labels, previous=args.previous)
    print("\n".join(format_pull(result)))
    return 0


def cmd_train(args) -> int:
    from ..train.run import train  # torch and transformers load only for commands that need them

    config = load_config(args.config)
    result = train(config, root=args.root, config_path=args.config, models_dir=args.models_dir,
                   runs_dir=args.runs_dir, version=args.version, log=lambda m: print(m, flush=True))
    if result.dev_metrics:
        print(f"\ndev metrics ({len(result.split.dev)} documents, strict entity level):")
        print(scores_table(result.dev_metrics))
    print(f"\nmodel: {result.model_dir}")
    return 0


def cmd_pretrain(args) -> int:
    from ..model.predictor import set_threads
    from ..train.pretrain import PretrainInterrupted, PretrainOptions, pretrain
    from ..train.run import vocabulary_texts

    config = load_config(args.config)
    for name in ("steps", "batch_size", "checkpoint_every", "log_every", "corpus_min_char_count"):
        if getattr(args, name) < (0 if name == "steps" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be at least {0 if name == 'steps' else 1}")
    if not args.steps and args.epochs <= 0:
        raise ValueError("--epochs must be positive")
    set_threads(config.train.threads if args.threads is None else args.threads)
    documents = load_documents(resolve_annotation_files(config.data.annotations, args.root), config.labels)
    texts = list(dict.fromkeys(vocabulary_texts(config, documents, args.root)[0]))
    options = PretrainOptions(
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_ratio=args.warmup_ratio, mask_probability=args.mask_probability, whole_word=args.whole_word,
        corpus=str(args.corpus) if args.corpus else None, corpus_min_char_count=args.corpus_min_char_count,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every)
    try:
        pretrain(config, texts, args.output, options, run_dir=args.run_dir, resume=args.resume,
                 log=lambda m: print(m, flush=True))
    except PretrainInterrupted as stopped:
        print(f"policy-ner pretrain: {stopped}", file=sys.stderr, flush=True)
        return 128 + stopped.signal_number
    return 0


def cmd_cv(args) -> int:
    from ..evaluate.cv import cross_validate, systems_for, write_cross_validation

    config = load_config(args.config)
    documents = load_documents(resolve_annotation_files(config.data.annotations, args.root), config.labels)
    baselines = [name.strip() for name in args.baselines.split(",") if name.strip()]
    folds, grouping, note = cv_folds(config, documents, args)
    if note:
        print(note, flush=True)
    vocab_texts = []
    if not args.no_model:
        from ..model.predictor import set_threads
        from ..train.run import vocabulary_texts

        set_threads(config.train.threads)
        vocab_texts = vocabulary_texts(config, documents, args.root)[0]
    systems = systems_for(config, vocab_texts, baselines, include_model=not args.no_model,
                          log=lambda m: print(m, flush=True))
    cv = cross_validate(documents, config.labels, systems, folds=folds, grouping=grouping,
                        log=lambda m: print(m, flush=True))
    suffix = {"genre": "-genre", "doc": "-by-doc"}.get(grouping["by"], "")
    output = args.output or Path("eval") / f"cv-{config.name}{suffix}"
    title = {"genre": f"Leave-one-genre-out: {config.name}",
             "doc": f"{len(folds)}-fold cross-validation by document (ungrouped): {config.name}"}.get(
        grouping["by"], f"{len(folds)}-fold cross-validation by source document: {config.name}")
    names = {"model": f"model ({config.name})"}
    paths = write_cross_validation(cv, output, title, shlex.join(["policy-ner", *args.argv]), names)
    print()
    print(paths[1].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(p) for p in paths[:2])} and {len(paths) - 2} prediction file(s)")
    return 0


def cv_folds(config, documents, args):
    """The folds `policy-ner cv` runs on, how they were made (for cv.json), and a note for the output
    naming the documents the manifest does not cover."""
    from ..corpus import document_groups
    from ..evaluate.cv import assign_folds, genre_folds

    if args.leave_out is None and args.group_by == "doc":
        return assign_folds(documents, args.folds, args.seed), {"by": "doc"}, ""
    manifest = Path(args.root) / config.data.manifest
    shown = str(config.data.manifest)
    if not manifest.is_file():
        if args.leave_out == "genre":
            raise FileNotFoundError(f"{manifest}: manifest not found; leave-one-genre-out needs its genre column")
        note = (f"{manifest} not found: each document is a group of its own (the folds of --group-by doc); "
                "set data.manifest to group chunks of one source document")
        return (assign_folds(documents, args.folds, args.seed),
                {"by": "group", "manifest": shown, "manifest_missing": True,
                 "groups": {d.doc_id: d.doc_id for d in documents}, "not_in_manifest": [d.doc_id for d in documents]},
                note)
    groups, genres = document_groups(manifest)
    missing = [d.doc_id for d in documents if d.doc_id not in groups]
    if args.leave_out == "genre":
        never = [d.doc_id for d in documents if d.doc_id not in genres]
        note = (f"{len(never)} document(s) without a genre in {shown}, trained on in every fold and never tested: "
                f"{', '.join(never)}") if never else ""
        grouping = {"by": "genre", "manifest": shown, "genres": {d.doc_id: genres[d.doc_id] for d in documents
                                                                  if d.doc_id in genres}, "never_tested": never}
        return genre_folds(documents, genres), grouping, note
    note = (f"{len(missing)} document(s) not in {shown}, each a group of its own: {', '.join(missing)}"
            if missing else "")
    grouping = {"by": "group", "manifest": shown, "groups": {d.doc_id: groups.get(d.doc_id, d.doc_id) for d in documents},
                "not_in_manifest": missing}
    return assign_folds(documents, args.folds, args.seed, groups), grouping, note


def _run_context(args, exports) -> dict:
    return {"gold_files": [{"path": str(p), "sha256": sha256_file(p)} for p in exports],
            "split": args.split, "command": shlex.join(["policy-ner", *args.argv]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "bootstrap": {"samples": args.samples, "seed": args.seed}}


def cmd_evaluate(args) -> int:
    source = open_source(args.model)
    labels = source.labels or load_config(args.config).labels
    gold = select_documents(load_documents(args.exports, labels), args.split, [source])
    context = {"model": source.name, "source": source.path, **_run_context(args, args.exports),
               "documents": len(gold), "base_model": (source.card or {}).get("base_model"),
               "model_card": source.card}
    report = build_report(gold, source_predictions(source, gold), labels, samples=args.samples, seed=args.seed,
                          context=context)
    paths = write_evaluation(report, args.output or Path("eval") / source.name)
    result = report.result
    print(scores_table(result))
    micro = report.intervals["micro avg"]["f1"]
    print(f"\nmicro F1 {result.micro.f1:.3f}, 95% bootstrap interval [{micro.low:.3f}, {micro.high:.3f}] "
          f"over {result.documents} documents")
    if report.bootstrap["note"]:
        print(f"warning: {report.bootstrap['note']}")
    print(f"seqeval default-mode micro F1 (diagnostic): {result.default_mode_micro_f1:.3f}")
    print("partial-match (SemEval-2013) F1: " + ", ".join(
        f"{schema} {rows['overall'].f1:.3f}" for schema, rows in report.partial.items()))
    print(f"wrote {', '.join(str(p) for p in paths if p.suffix != '.png')}")
    return 0


def cmd_compare(args) -> int:
    sources = [open_source(path) for path in args.systems]
    if len(sources) < 2:
        raise ValueError("compare needs at least two versions (A B [C ...])")
    label_sets = {tuple(s.labels) for s in sources if s.labels}
    if len(label_sets) > 1:
        raise ValueError("the models have different label sets: "
                         + "; ".join(f"{s.path}: {', '.join(s.labels)}" for s in sources if s.labels))
    labels = list(label_sets.pop()) if label_sets else load_config(args.config).labels
    gold = select_documents(load_documents(args.exports, labels), args.split, sources)
    names = unique_names([s.name for s in sources])
    systems = {}
    for name, source in zip(names, sources):
        systems[name] = source_predictions(source, gold)
    context = {"model": " vs ".join(names), **_run_context(args, args.exports), "documents": len(gold)}
    comparison = compare_systems(gold, systems, labels, sources=sources, samples=args.samples, seed=args.seed,
                                 context=context)
    paths = write_comparison(comparison, args.output or Path("eval") / ("compare-" + "-vs-".join(names)))
    baseline = names[0]
    print(f"{len(gold)} documents; baseline {baseline}")
    if comparison.bootstrap["note"]:
        print(f"warning: {comparison.bootstrap['note']}")
    for name in names[1:]:
        print(f"\n{name} minus {baseline} (strict F1, 95% paired bootstrap interval):")
        for row, by_metric in comparison.deltas[name].items():
            d = by_metric["f1"]
            print(f"  {row:<20} {d['a']:.3f} -> {d['b']:.3f}  delta {d['delta']:+.3f} "
                  f"[{d['low']:+.3f}, {d['high']:+.3f}]{'  (excludes 0)' if d['excludes_zero'] else ''}")
    print(f"\n{len(comparison.documents)} document(s), {len(comparison.disagreements)} entities where the "
          f"versions disagree")
    print(f"wrote {', '.join(str(p) for p in paths if p.suffix != '.png')}")
    return 0


def cmd_models_list(args) -> int:
    entries = list_models(args.models_dir)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=2))
    elif not entries:
        print(f"no model versions in {args.models_dir}")
    else:
        print(models_table(entries))
    return 0


def cmd_predict(args) -> int:
    from transformers.utils import logging as transformers_logging

    from ..predict.batch import predict_files, print_summary
    from ..model.predictor import Predictor, set_batch_threads

    transformers_logging.disable_progress_bar()  # ours is the one to watch
    network_threads = set_batch_threads(args.model, args.threads, overlap=not args.no_overlap)
    predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size, runtime=args.runtime,
                                          threads=network_threads, onnx_dir=args.onnx_dir)
    try:
        summary = predict_files(predictor, args.inputs, args.output, format=args.format, resume=args.resume,
                                overwrite=args.overwrite, glob=args.glob, input_format=args.input_format,
                                text_field=args.text_field, id_field=args.id_field,
                                progress=None if args.quiet else sys.stderr, overlap=not args.no_overlap)
    except KeyboardInterrupt:
        print(f"interrupted: {args.output} holds every document finished so far; run the same command with "
              f"--resume to go on", file=sys.stderr)
        return 130
    print_summary(summary)
    return summary.exit_code


def cmd_export_onnx(args) -> int:
    from ..model.export import export_onnx

    result = export_onnx(args.model, args.output)
    for path in (result.fp32, result.int8):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"fp32 graph matches torch within {result.max_difference:.1e} (largest logit difference); "
          f"{result.seconds:.1f} s")
    return 0


def cmd_data_verify(args) -> int:
    problems = verify_manifest(args.manifest)
    for problem in problems:
        print(problem)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
