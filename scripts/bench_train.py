"""Training-throughput benchmark: `make bench-train [CONFIG=configs/default.yaml]`.

Trains CONFIG's model shape (its model, window and train settings; its labels are replaced by each data
set's own) on two data sets of about --chars characters each, one run at a time, each in a process of its
own through `policy-ner train`:

- `long documents`: the annotated policy documents of annotations/corpus-v1.json (27 documents);
- `one-sentence documents`: the MSRA sentences of --sentences (default tests/data/msra-test-sample.bio),
  one document per sentence, repeated under new doc ids until there are --chars characters;
  once with `window.pack` off (one window per sentence) and once on (sentences packed into windows).

Prints the windows, seconds per epoch (the median of the epochs after the first, which also pays for
start-up) and training characters per second of each run, and the ratio of each to the long documents.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml

from policy_ner import markdown
from policy_ner.labelstudio.exports import load_documents
from policy_ner.labelstudio.imports import import_documents, write_export
from policy_ner.types import Document

ROOT = Path(__file__).resolve().parent.parent
MSRA_LABELS = ("PER", "LOC", "ORG")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--chars", type=int, default=50_000, help="characters of one-sentence documents")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sentences", type=Path, default=ROOT / "tests" / "data" / "msra-test-sample.bio")
    args = parser.parse_args()

    base = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    corpus_labels = base["labels"]
    long_docs = load_documents([ROOT / "annotations" / "corpus-v1.json"], corpus_labels)
    sentences, _ = import_documents(args.sentences, "bio", id_prefix="msra")
    short_docs = repeated(sentences, args.chars)

    runs = [
        ("long documents", long_docs, corpus_labels, True),
        ("one-sentence documents, unpacked", short_docs, list(MSRA_LABELS), False),
        ("one-sentence documents, packed", short_docs, list(MSRA_LABELS), True),
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="policy-ner-bench-train-") as scratch:
        for index, (name, docs, labels, pack) in enumerate(runs):
            root = Path(scratch) / f"run{index}"
            print(
                f"training on {name}: {len(docs)} documents, {sum(len(d.text) for d in docs):,} characters", flush=True
            )
            rows.append((name, *train_once(root, base, docs, labels, pack, args.epochs)))

    reference = rows[0][4]
    table = [
        [
            name,
            f"{len(docs)}",
            f"{chars:,}",
            f"{windows:,}",
            f"{seconds:.2f}",
            f"{rate:,.0f}",
            f"{reference / rate:.2f}x",
        ]
        for (name, chars, windows, seconds, rate), (_, docs, _, _) in zip(rows, runs)
    ]
    print()
    print(
        f"config {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}, {args.epochs} epochs each:"
    )
    print(
        markdown.table(
            ["data", "documents", "characters", "windows", "s / epoch", "characters / s", "slower than long by"],
            table,
        )
    )
    return 0


def repeated(documents: list[Document], chars: int) -> list[Document]:
    out: list[Document] = []
    copy = 0
    while sum(len(d.text) for d in out) < chars:
        out.extend(replace(d, doc_id=f"{d.doc_id}-c{copy}") for d in documents)
        copy += 1
    return out


def train_once(
    root: Path, base: dict, docs: list[Document], labels: list[str], pack: bool, epochs: int
) -> tuple[int, int, float, float]:
    (root / "annotations").mkdir(parents=True)
    (root / "configs").mkdir()
    write_export(docs, labels, root / "annotations" / "data.json")
    config = {
        **base,
        "name": "bench",
        "labels": labels,
        "data": {**base.get("data", {}), "vocab_sources": [], "dev_fraction": 0.0, "edge_punctuation": ""},
        "window": {**base.get("window", {}), "pack": pack},
        "train": {**base.get("train", {}), "epochs": epochs, "select": "last", "patience": 0},
    }
    config_path = root / "configs" / "bench.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    command = [sys.executable, "-m", "policy_ner.cli", "train", str(config_path), "--root", str(root), "--version", "v"]
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{output.stdout}{output.stderr}")
    history = [json.loads(line) for line in (root / "training" / "v" / "log.jsonl").read_text().splitlines()]
    seconds = statistics.median(record["seconds"] for record in history[1:] or history)
    windows = int(next(line for line in output.stdout.splitlines() if "training windows" in line).split()[0])
    chars = sum(len(d.text) for d in docs)
    return chars, windows, seconds, chars / seconds


if __name__ == "__main__":
    sys.exit(main())
