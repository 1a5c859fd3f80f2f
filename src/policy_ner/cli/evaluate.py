"""`policy-ner evaluate`, `compare` and `cv`: scores against gold exports, versions side by side, and
cross-validation of a config against the baselines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import load_config
from ..evaluate.comparison import compare_sources, evaluate_source
from ..evaluate.evaluation import describe_unscored
from ..evaluate.report import write_comparison, write_evaluation
from ..scoring import scores_table
from .common import command, config_option, invocation, log


def register(commands) -> None:
    evaluate = command(
        commands,
        "evaluate",
        "score a model or a prediction file against gold exports; writes report.{json,md,html}",
        "policy-ner evaluate models/<version> annotations/*.json --split dev",
    )
    evaluate.add_argument("model", type=Path, metavar="MODEL_DIR_OR_PREDICTIONS_JSONL")
    evaluate.add_argument("exports", nargs="+", type=Path, metavar="EXPORT.json")
    evaluate.add_argument("--output", type=Path, help="report folder (default eval/<model version>/)")
    _report_options(
        evaluate,
        "score only the model's dev or train documents (from its model card)",
        "label set when scoring a prediction file",
    )
    evaluate.set_defaults(handler=cmd_evaluate)

    compare = command(
        commands,
        "compare",
        "compare versions (model directories or prediction files) on the same gold documents",
        "policy-ner compare models/<v1> models/<v2> --on annotations/*.json --split dev",
    )
    compare.add_argument(
        "systems",
        nargs="+",
        type=Path,
        metavar="VERSION",
        help="two or more model directories or prediction JSONL files (A B [C ...]); the first is the baseline",
    )
    compare.add_argument(
        "--on",
        nargs="+",
        type=Path,
        required=True,
        metavar="EXPORT.json",
        dest="exports",
        help="gold Label Studio export(s)",
    )
    compare.add_argument("--output", type=Path, help="report folder (default eval/compare-<A>-vs-<B>/)")
    _report_options(
        compare,
        "only documents every model directory lists under this split in its card",
        "label set when only prediction files are given",
    )
    compare.set_defaults(handler=cmd_compare)

    cv = command(
        commands,
        "cv",
        "k-fold cross-validation by source document: the config's model and the "
        "baselines, strict and overlap F1 as mean ± std over folds",
        "policy-ner cv configs/default.yaml --folds 5  (or --leave-out genre)",
    )
    cv.add_argument("config", type=Path)
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--seed", type=int, default=13, help="salt of the fold assignment's tie-break")
    cv.add_argument(
        "--baselines",
        default="wordlist,crf,lac",
        help="comma-separated baselines to score on the same folds (wordlist, crf, lac; '' for none)",
    )
    cv.add_argument("--no-model", action="store_true", help="score the baselines only")
    cv.add_argument(
        "--group-by",
        choices=("group", "doc"),
        default="group",
        help="keep each source-document group of the manifest (data.manifest) in one fold (default), "
        "or fold single documents as before groups existed",
    )
    cv.add_argument(
        "--leave-out",
        choices=("genre",),
        help="one fold per genre of the manifest instead of --folds (output eval/cv-<name>-genre/)",
    )
    cv.add_argument("--root", type=Path, default=Path("."), help="project root for relative data paths")
    cv.add_argument("--output", type=Path, help="folder for cv.md, cv.json and predictions (default eval/cv-<name>/)")
    cv.set_defaults(handler=cmd_cv)


def _report_options(parser: argparse.ArgumentParser, split_help: str, labels_help: str) -> None:
    """--split, --config (the label set of prediction files) and the bootstrap's --samples and --seed."""
    parser.add_argument("--split", choices=("all", "dev", "train"), default="all", help=split_help)
    config_option(parser, labels_help)
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap samples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def cmd_evaluate(args) -> int:
    report = evaluate_source(
        args.model,
        args.exports,
        lambda: load_config(args.config).labels,
        split=args.split,
        samples=args.samples,
        seed=args.seed,
        command=invocation(args),
    )
    paths = write_evaluation(report, args.output or Path("eval") / report.context["model"])
    result = report.result
    print(scores_table(result))
    micro = report.intervals["micro avg"]["f1"]
    print(
        f"\nmicro F1 {result.micro.f1:.3f}, 95% bootstrap interval [{micro.low:.3f}, {micro.high:.3f}] "
        f"over {result.documents} documents"
    )
    if report.bootstrap["note"]:
        print(f"warning: {report.bootstrap['note']}")
    warn_unscored(report.context)
    print(f"seqeval default-mode micro F1 (diagnostic): {result.default_mode_micro_f1:.3f}")
    print(
        "partial-match (SemEval-2013) F1: "
        + ", ".join(f"{schema} {rows['overall'].f1:.3f}" for schema, rows in report.partial.items())
    )
    print(f"wrote {', '.join(str(p) for p in paths if p.suffix != '.png')}")
    return 0


def cmd_compare(args) -> int:
    comparison = compare_sources(
        args.systems,
        args.exports,
        lambda: load_config(args.config).labels,
        split=args.split,
        samples=args.samples,
        seed=args.seed,
        command=invocation(args),
    )
    names = [system["name"] for system in comparison.systems]
    paths = write_comparison(comparison, args.output or Path("eval") / ("compare-" + "-vs-".join(names)))
    baseline = comparison.baseline
    print(f"{len(comparison.doc_ids)} documents; baseline {baseline}")
    if comparison.bootstrap["note"]:
        print(f"warning: {comparison.bootstrap['note']}")
    for name in names[1:]:
        print(f"\n{name} minus {baseline} (strict F1, 95% paired bootstrap interval):")
        for row, by_metric in comparison.deltas[name].items():
            d = by_metric["f1"]
            print(
                f"  {row:<20} {d['a']:.3f} -> {d['b']:.3f}  delta {d['delta']:+.3f} "
                f"[{d['low']:+.3f}, {d['high']:+.3f}]{'  (excludes 0)' if d['excludes_zero'] else ''}"
            )
    print(
        f"\n{len(comparison.documents)} document(s), {len(comparison.disagreements)} entities where the "
        f"versions disagree"
    )
    warn_unscored(comparison.context)
    print(f"wrote {', '.join(str(p) for p in paths if p.suffix != '.png')}")
    return 0


def warn_unscored(context: dict) -> None:
    if context.get("predictions_without_gold"):
        print(f"warning: {describe_unscored(context['predictions_without_gold'])}", file=sys.stderr)


def cmd_cv(args) -> int:
    from ..evaluate.cv import cross_validate_config, cv_title, default_output, write_cross_validation

    config = load_config(args.config)
    baselines = [name.strip() for name in args.baselines.split(",") if name.strip()]
    cv = cross_validate_config(
        config,
        args.root,
        k=args.folds,
        seed=args.seed,
        group_by=args.group_by,
        leave_out=args.leave_out,
        baselines=baselines,
        include_model=not args.no_model,
        log=log,
    )
    paths = write_cross_validation(
        cv,
        args.output or default_output(config, cv),
        cv_title(config, cv),
        invocation(args),
        {"model": f"model ({config.name})"},
    )
    print()
    print(paths[1].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(p) for p in paths[:2])} and {len(paths) - 2} prediction file(s)")
    return 0
