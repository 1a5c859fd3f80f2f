"""Batch-prediction benchmark: `make bench [MODEL=models/<version>]`.

Builds a fixed document set of at least --chars characters from data/raw/**/*.txt (sorted, repeated
as often as needed, each copy its own doc id), then runs each runtime over it in a subprocess of its
own (so that peak memory figures do not mix):

- `pipeline`: the reference, `transformers.pipeline("token-classification", aggregation_strategy="simple")`
  on the same model directory, one call per document, chunking long documents itself with `stride`
  set to the model's window overlap;
- `torch`, `onnx`, `onnx-int8`: `policy_ner.predict.batch.predict_files`, exactly what `policy-ner predict` runs.

Every run reads the documents from a JSONL file and writes its predictions to JSONL; model loading is
not timed. `torch` also runs on the document set twice over (twice the documents), to show that peak
memory does not grow with the number of documents. Then the seconds of each stage (feature
analysers, encoding, the network per runtime, decoding) over one copy of data/raw, run one at a time,
which shows where the time goes; with --quantization-options, the network also quantized with other
ONNX Runtime options. Last, the strict micro F1 of torch, onnx and onnx-int8 on the gold annotations
(all documents, and the model's dev documents).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from policy_ner import markdown

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("pipeline", "torch", "onnx", "onnx-int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--chars", type=int, default=500_000, help="at least this many characters (default 500,000)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: one per available core)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each runtime, interleaved; the tables give the median run (default 3)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (ours)")
    parser.add_argument("--no-quality", action="store_true", help="skip the F1 comparison")
    parser.add_argument("--no-overlap", action="store_true", help="ours: one stage at a time (predict --no-overlap)")
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage timing")
    parser.add_argument(
        "--quantization-options",
        action="store_true",
        help="also time the network quantized with other ONNX Runtime options",
    )
    parser.add_argument("--worker", choices=RUNTIMES, help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    return run_benchmark(args)


# --- the benchmark --------------------------------------------------------------------------------


def document_set(min_chars: int) -> list[dict]:
    """The raw documents in path order, repeated until there are at least `min_chars` characters."""
    files = sorted((ROOT / "data" / "raw").rglob("*.txt"))
    texts = [(p.stem, p.read_text(encoding="utf-8-sig")) for p in files]
    documents, total, copy = [], 0, 0
    while total < min_chars:
        for stem, text in texts:
            documents.append({"doc_id": f"{stem}~{copy}", "text": text})
            total += len(text)
        copy += 1
    return documents


def run_benchmark(args) -> int:
    runtimes = [r for r in args.runtimes.split(",") if r]
    documents = document_set(args.chars)
    doubled = documents + [{**d, "doc_id": f"{d['doc_id']}~b"} for d in documents]
    machine = (
        f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} available), load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"model {args.model}; {len(documents)} documents, {sum(len(d['text']) for d in documents):,} characters "
        f"(data/raw repeated); {machine}",
        flush=True,
    )
    wants_onnx = any(r.startswith("onnx") for r in runtimes) or args.quantization_options
    if wants_onnx and not (args.model / "onnx" / "model.int8.onnx").is_file():
        print("exporting ONNX ...", flush=True)
        subprocess.run([sys.executable, "-m", "policy_ner.cli", "export-onnx", str(args.model)], check=True)

    with tempfile.TemporaryDirectory(prefix="policy-ner-bench-") as scratch:
        scratch = Path(scratch)
        sets = {
            "all": write_jsonl(scratch / "docs.jsonl", documents),
            "doubled": write_jsonl(scratch / "doubled.jsonl", doubled),
        }
        runs: dict[tuple[str, str], list[dict]] = {}
        # interleaved, so that a spell of load on a shared machine hits every runtime alike
        plan = [(runtime, "all") for _ in range(args.repeats) for runtime in runtimes]
        plan += [("torch", "doubled")] if "torch" in runtimes else []
        for runtime, size in plan:
            command = [
                sys.executable,
                __file__,
                str(args.model),
                "--worker",
                runtime,
                "--docs",
                str(sets[size]),
                "--out",
                str(scratch / f"{runtime}-{size}.jsonl"),
                "--threads",
                str(args.threads),
                "--batch-size",
                str(args.batch_size),
            ] + (["--no-overlap"] if args.no_overlap else [])
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            runs.setdefault((runtime, size), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {runtime} ({size}): {runs[runtime, size][-1]}", flush=True)

    print()
    print(speed_table({r: runs[r, "all"] for r in runtimes}))
    if ("torch", "doubled") in runs:
        print()
        print(memory_table(median_run(runs["torch", "all"]), runs["torch", "doubled"][0]))
    ours = [r for r in runtimes if r != "pipeline"]
    if not args.no_stages and ours:
        print()
        print(stage_table(args.model, ours, args.threads, args.batch_size, args.quantization_options))
    if not args.no_quality:
        print()
        print(quality_table(args.model, ours))
    return 0


def write_jsonl(path: Path, documents: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    return path


def median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def speed_table(runs: dict[str, list[dict]]) -> str:
    """Speed per runtime (its median run), in wall-clock and in CPU time, with the ratios to the pipeline
    and to torch, and every run's seconds."""
    results = {runtime: median_run(r) for runtime, r in runs.items()}

    def ratios(r: dict, key: str) -> list[str]:
        speed = r["characters"] / r[key]
        return [
            f"{speed / (base['characters'] / base[key]):.2f}" if base else "-"
            for base in (results.get("pipeline"), results.get("torch"))
        ]

    header = [
        "runtime",
        "documents",
        "characters",
        "seconds",
        "chars/s",
        "s/doc",
        "peak RSS MB",
        "× pipeline",
        "× torch",
        "CPU s",
        "chars/CPU-s",
        "× pipeline (CPU)",
        "× torch (CPU)",
        "seconds of each run",
    ]
    rows = [
        [
            runtime,
            f"{r['documents']:,}",
            f"{r['characters']:,}",
            f"{r['seconds']:.1f}",
            f"{r['characters'] / r['seconds']:,.0f}",
            f"{r['seconds'] / r['documents']:.4f}",
            f"{r['peak_rss_mb']:,.0f}",
            *ratios(r, "seconds"),
            f"{r['cpu_seconds']:.1f}",
            f"{r['characters'] / r['cpu_seconds']:,.0f}",
            *ratios(r, "cpu_seconds"),
            ", ".join(f"{run['seconds']:.1f}" for run in runs[runtime]),
        ]
        for runtime, r in results.items()
    ]
    return markdown.table(header, rows, "l" + "r" * 12 + "l")


def memory_table(single: dict, double: dict) -> str:
    rows = [
        [name, f"{r['documents']:,}", f"{r['characters']:,}", f"{r['loaded_rss_mb']:,.0f}", f"{r['peak_rss_mb']:,.0f}"]
        for name, r in (("the document set", single), ("twice over", double))
    ]
    return markdown.table(
        ["torch run", "documents", "characters", "RSS after loading MB", "peak RSS MB"], rows, "lrrrr"
    )


def quality_table(model_dir: Path, runtimes: list[str]) -> str:
    from policy_ner.labelstudio.exports import load_documents, resolve_annotation_files
    from policy_ner.model.predictor import Predictor, predict_documents
    from policy_ner.model.registry import read_model_card, read_model_settings
    from policy_ner.scoring import evaluate

    labels = read_model_settings(model_dir)["labels"]
    gold = load_documents(resolve_annotation_files(["annotations/*.json"], ROOT), labels)
    dev_ids = set(read_model_card(model_dir)["data"].get("dev_documents", []))
    dev = [d for d in gold if d.doc_id in dev_ids]
    scores = {}
    for runtime in runtimes:
        predicted = predict_documents(Predictor.from_pretrained(model_dir, runtime=runtime), gold)
        scores[runtime] = (
            evaluate(gold, predicted, labels).micro.f1,
            evaluate(dev, {d.doc_id: predicted[d.doc_id] for d in dev}, labels).micro.f1 if dev else None,
        )
    base = scores.get("torch")

    def delta(runtime: str, i: int) -> str:
        return f"{100 * (scores[runtime][i] - base[i]):+.2f}" if base and base[i] is not None else "-"

    rows = [
        [runtime, f"{all_f1:.4f}", "None" if dev_f1 is None else f"{dev_f1:.4f}", delta(runtime, 0), delta(runtime, 1)]
        for runtime, (all_f1, dev_f1) in scores.items()
    ]
    return (
        f"strict micro F1 on annotations/*.json ({len(gold)} documents; dev: {len(dev)} documents)\n"
        + markdown.table(
            ["runtime", "F1 all", "F1 dev", "Δ all vs torch (points)", "Δ dev vs torch (points)"], rows, "lrrrr"
        )
    )


QUANTIZATION_OPTIONS = {
    "INT8, ONNX Runtime's defaults (MatMul, Gather, Conv ...)": {},
    "INT8, MatMul and Conv": {"op_types_to_quantize": ["MatMul", "Conv"]},
    "INT8, MatMul with constant weights only": {
        "op_types_to_quantize": ["MatMul"],
        "extra_options": {"MatMulConstBOnly": True},
    },
}


def stage_table(
    model_dir: Path, runtimes: list[str], threads: int, batch_size: int, quantization_options: bool = False
) -> str:
    """Seconds of each stage over one copy of data/raw, one stage at a time with all the threads: the
    feature analysers, the rest of encoding (tokenizer, packing), the network per runtime, decoding.
    It shows where the time goes, hence how far a faster network can move the end-to-end figure."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from policy_ner.model.export import quiet_root_logger
    from policy_ner.model.predictor import Predictor, set_threads
    from policy_ner.model.runtimes import OnnxRuntime, onnx_model_path

    threads = set_threads(threads)
    texts = [d["text"] for d in document_set(1)]
    predictors = {
        r: Predictor.from_pretrained(model_dir, batch_size=batch_size, runtime=r, threads=threads) for r in runtimes
    }
    first = next(iter(predictors.values()))
    rows = []
    for channel in first.features.channels:
        rows.append(
            (
                f"features: {channel}",
                best_seconds(lambda channel=channel: first.features.channel_values(channel, texts)),
            )
        )
    encode_seconds = best_seconds(lambda: first.encode(texts))
    rows.append(("encode in all (features, tokenizer, packing)", encode_seconds))
    encoded = first.encode(texts)
    for runtime, predictor in predictors.items():
        rows.append((f"network: {runtime}", best_seconds(lambda predictor=predictor: predictor.token_scores(encoded))))
    if quantization_options:
        variant = Predictor.from_pretrained(model_dir, batch_size=batch_size, runtime="onnx", threads=threads)
        with tempfile.TemporaryDirectory(prefix="policy-ner-quant-") as scratch:
            for name, options in QUANTIZATION_OPTIONS.items():
                path = Path(scratch) / "variant.onnx"
                with quiet_root_logger():
                    quantize_dynamic(onnx_model_path(model_dir), path, weight_type=QuantType.QInt8, **options)
                variant.runtime = OnnxRuntime(path, threads)
                rows.append((f"network: {name}", best_seconds(lambda: variant.token_scores(encoded))))
    scores = first.token_scores(encoded)
    rows.append(("decode (Viterbi, entities)", best_seconds(lambda: first.entities_from_scores(encoded, scores))))
    network = {name: seconds for name, seconds in rows if name.startswith("network: ")}
    torch_network = network.get("network: torch")
    cells = [
        [name, f"{seconds:.3f}", f"{torch_network / seconds:.2f}" if name in network and torch_network else ""]
        for name, seconds in rows
    ]
    return (
        f"stages over data/raw ({len(texts)} documents, {sum(map(len, texts)):,} characters), one at a time, "
        f"{threads} thread(s); best of 3\n" + markdown.table(["stage", "seconds", "× torch network"], cells, "lrr")
    )


def best_seconds(work, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


# --- one runtime, in its own process ----------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process, all its threads: unlike wall time, barely moved by other processes
    sharing the cores (the development machine is shared)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(loaded: float, started: tuple[float, float], **counts) -> dict:
    return {
        **counts,
        "seconds": round(time.perf_counter() - started[0], 2),
        "cpu_seconds": round(cpu_seconds() - started[1], 2),
        "loaded_rss_mb": round(loaded, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_worker(args) -> dict:
    if args.worker == "pipeline":
        return run_pipeline(args)
    from policy_ner.model.predictor import Predictor, set_batch_threads
    from policy_ner.predict.batch import predict_files

    threads = set_batch_threads(args.model, args.threads, overlap=not args.no_overlap)
    predictor = Predictor.from_pretrained(args.model, batch_size=args.batch_size, runtime=args.worker, threads=threads)
    predictor.predict(["对台资企业给予最高300万元补贴。"])
    loaded = peak_rss_mb()
    started = time.perf_counter(), cpu_seconds()
    summary = predict_files(predictor, [args.docs], args.out, overwrite=True, overlap=not args.no_overlap)
    return measured(
        loaded,
        started,
        documents=summary.documents,
        characters=summary.characters,
        entities=summary.entities,
        threads=threads,
    )


def run_pipeline(args) -> dict:
    """The reference: what one would write with transformers alone. The model directory's tokenizer is
    already a fast (tokenizers-backed) one in transformers 5; only its `model_max_length` is set to the
    model's window so that the pipeline chunks documents. The pipeline passes token type 0 everywhere, so
    a model with word features sees none (the figures are a speed reference, not a quality one)."""
    import numpy as np
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    import policy_ner.model.network  # noqa: F401  (registers the scratch model's head with the Auto classes)
    from policy_ner.model.predictor import set_threads
    from policy_ner.model.registry import read_model_settings

    threads = set_threads(args.threads)
    settings = read_model_settings(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model, model_max_length=settings["max_length"])
    model = AutoModelForTokenClassification.from_pretrained(args.model)
    tagger = pipeline(
        "token-classification",
        model=model,
        tokenizer=tokenizer,
        aggregation_strategy="simple",
        stride=settings["stride"],
        device=torch.device("cpu"),
    )
    tagger("对台资企业给予最高300万元补贴。")
    loaded = peak_rss_mb()
    documents = characters = entities = 0
    started = time.perf_counter(), cpu_seconds()
    with open(args.docs, encoding="utf-8") as source, open(args.out, "w", encoding="utf-8") as sink:
        for line in source:
            record = json.loads(line)
            found = tagger(record["text"])
            sink.write(
                json.dumps(
                    {
                        "doc_id": record["doc_id"],
                        "entities": [
                            {
                                "label": e["entity_group"],
                                "start": int(e["start"]),
                                "end": int(e["end"]),
                                "score": float(np.round(e["score"], 4)),
                            }
                            for e in found
                        ],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            sink.flush()
            documents += 1
            characters += len(record["text"])
            entities += len(found)
    return measured(loaded, started, documents=documents, characters=characters, entities=entities, threads=threads)


if __name__ == "__main__":
    sys.exit(main())
