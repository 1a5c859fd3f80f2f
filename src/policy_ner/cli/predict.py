"""`policy-ner predict` and `policy-ner export-onnx`: batch prediction over files, folders and JSONL."""

from __future__ import annotations

import sys
from pathlib import Path

from ..model.runtimes import RUNTIMES
from ..predict.inputs import DEFAULT_GLOB, EXIT_SKIPPED, INPUT_FORMATS
from ..predict.outputs import OUTPUT_FORMATS
from .common import command


def register(commands) -> None:
    predict = command(
        commands,
        "predict",
        "find entities in .txt files, folders, JSONL files or standard input "
        f"('-'); exit status {EXIT_SKIPPED} when some inputs were skipped",
        "policy-ner predict models/<version> data/raw --output predictions/raw.jsonl",
    )
    predict.add_argument("model", type=Path, metavar="MODEL_DIR")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder, JSONL file, or - for standard input")
    predict.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="OUT",
        help="OUT.jsonl, OUT.csv (one row per entity) or OUT.json (Label Studio tasks)",
    )
    predict.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: from OUT's suffix)")
    predict.add_argument("--resume", action="store_true", help="continue OUT: skip the documents already in it")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    predict.add_argument("--glob", default=DEFAULT_GLOB, help=f"files to read in folders (default {DEFAULT_GLOB})")
    predict.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="auto: .jsonl files are JSONL, anything else (and standard input) one text document",
    )
    predict.add_argument("--text-field", default="text", help="JSONL field holding the text (default text)")
    predict.add_argument("--id-field", default="doc_id", help="JSONL field holding the doc id (default doc_id)")
    predict.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="torch",
        help="torch, or ONNX Runtime on the export-onnx files (fp32 or INT8)",
    )
    predict.add_argument(
        "--device",
        default="cpu",
        help="where the torch runtime runs: cpu (default), cuda, mps or auto (the best one present)",
    )
    predict.add_argument("--onnx-dir", type=Path, help="folder of the export-onnx files (default MODEL_DIR/onnx)")
    predict.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads in all (default 0: one per available core); the feature stage and the network share them",
    )
    predict.add_argument(
        "--no-overlap",
        action="store_true",
        help="encode a batch only after the previous one is written (one stage at a time, each with all the threads)",
    )
    predict.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    predict.add_argument("--quiet", action="store_true", help="no progress bar on standard error")
    predict.set_defaults(handler=cmd_predict)

    export = command(
        commands,
        "export-onnx",
        "write MODEL_DIR/onnx/model.onnx and its dynamically quantized INT8 twin model.int8.onnx for predict --runtime",
        "policy-ner export-onnx models/<version>",
    )
    export.add_argument("model", type=Path, metavar="MODEL_DIR")
    export.add_argument("--output", type=Path, metavar="DIR", help="folder to write (default MODEL_DIR/onnx)")
    export.set_defaults(handler=cmd_export_onnx)


def cmd_predict(args) -> int:
    from transformers.utils import logging as transformers_logging

    from ..model.predictor import Predictor, set_batch_threads
    from ..predict.batch import predict_files, print_summary

    transformers_logging.disable_progress_bar()  # ours is the one to watch
    network_threads = set_batch_threads(args.model, args.threads, overlap=not args.no_overlap)
    predictor = Predictor.from_pretrained(
        args.model,
        batch_size=args.batch_size,
        runtime=args.runtime,
        threads=network_threads,
        onnx_dir=args.onnx_dir,
        device=args.device,
    )
    try:
        summary = predict_files(
            predictor,
            args.inputs,
            args.output,
            format=args.format,
            resume=args.resume,
            overwrite=args.overwrite,
            glob=args.glob,
            input_format=args.input_format,
            text_field=args.text_field,
            id_field=args.id_field,
            progress=None if args.quiet else sys.stderr,
            overlap=not args.no_overlap,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: {args.output} holds every document finished so far; run the same command with "
            f"--resume to go on",
            file=sys.stderr,
        )
        return 130
    print_summary(summary)
    return summary.exit_code


def cmd_export_onnx(args) -> int:
    from ..model.export import export_onnx

    result = export_onnx(args.model, args.output)
    for path in (result.fp32, result.int8):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(
        f"fp32 graph matches torch within {result.max_difference:.1e} (largest logit difference); "
        f"{result.seconds:.1f} s"
    )
    return 0
