"""Batch prediction over many documents, streamed: read a few documents, predict them together, write
each one out (flushed), forget them. Memory stays flat however many documents there are.

`predict_files` is what `policy-ner predict` runs; a notebook calls it the same way:

    from policy_ner.batch import predict_files
    from policy_ner.inference import Predictor
    summary = predict_files(Predictor.from_pretrained("models/v1"), ["data/raw"], "out.jsonl")
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from ..features.channels import NATIVE_CHANNELS, Featurizer
from .inputs import (
    DEFAULT_GLOB,
    EXIT_SKIPPED,
    InputDocument,
    Skipped,
    plan_inputs,
    read_documents,
    refuse_output_among_inputs,
)
from .outputs import PredictionWriter, open_writer, output_format

if TYPE_CHECKING:
    from ..model.predictor import Predictor

BATCH_DOCUMENTS = 32
BATCH_CHARACTERS = 200_000
"""A batch of documents is predicted once it has this many documents or characters."""


@dataclass
class BatchSummary:
    output: Path
    format: str
    documents: int = 0
    """Predicted and written by this run."""
    resumed: int = 0
    """Already complete in the output (`resume`), not predicted again."""
    entities: int = 0
    characters: int = 0
    seconds: float = 0.0
    skipped: list[Skipped] = field(default_factory=list)
    encodings: Counter = field(default_factory=Counter)
    """Documents predicted per detected encoding."""

    @property
    def exit_code(self) -> int:
        return EXIT_SKIPPED if self.skipped else 0


def predict_files(
    predictor: Predictor,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    format: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    glob: str = DEFAULT_GLOB,
    input_format: str = "auto",
    text_field: str = "text",
    id_field: str = "doc_id",
    batch_documents: int = BATCH_DOCUMENTS,
    batch_characters: int = BATCH_CHARACTERS,
    progress: TextIO | None = None,
    stdin: BinaryIO | None = None,
    overlap: bool = True,
) -> BatchSummary:
    """Predict every document of `inputs` (files, folders, JSONL files, `-` for standard input) into
    `output` (format from `format` or the suffix: .jsonl, .csv, .json for Label Studio).

    Bad inputs are skipped and listed in the summary. A doc id met a second time is skipped too (the
    first one wins), since a prediction file holds each doc id once. An `output` that is one of the
    inputs is refused. Every record names the predictor's model version; with `resume`, documents
    already in `output` are not predicted again, and an `output` of another model version is refused. `progress` (e.g. sys.stderr) gets a progress line. `overlap`
    computes the next batch's features while the network runs on the current one (see `_Stages`; give
    the two stages their cores with `inference.set_threads(overlapped=True)`)."""
    sources = plan_inputs(inputs, glob, input_format)
    refuse_output_among_inputs(sources, output)
    fmt = output_format(output, format)
    writer, done = open_writer(output, fmt, resume=resume, overwrite=overwrite, model_version=predictor.version)
    summary = BatchSummary(Path(output), fmt)
    bar = Progress(
        progress,
        _total(source.count() for source in sources) if progress else None,
        sum(s.size() for s in sources) if progress else 0,
    )
    first_source: dict[str, str] = {}
    pending: list[InputDocument] = []
    started = time.perf_counter()
    stages = _Stages(predictor, writer, summary, bar, overlap)
    try:
        for item in read_documents(sources, text_field, id_field, stdin):
            if isinstance(item, InputDocument) and item.doc_id in first_source:
                item = Skipped(
                    item.source, f"doc id {item.doc_id} already read from {first_source[item.doc_id]}", item.size
                )
            if isinstance(item, Skipped):
                _skip(item, summary, bar)
                continue
            first_source[item.doc_id] = item.source
            if item.doc_id in done:
                summary.resumed += 1
                bar.advance(size=item.size, predicted=False)
                continue
            pending.append(item)
            if len(pending) >= batch_documents or sum(len(d.text) for d in pending) >= batch_characters:
                stages.submit(pending)
                pending = []
        stages.submit(pending)
        stages.finish()
    finally:
        stages.close()
        writer.close()
        summary.seconds = round(time.perf_counter() - started, 2)
        bar.finish()
    return summary


class _Stages:
    """Prediction of a batch in two stages: its feature channels (`_BatchFeatures`), then encoding (the
    tokenizer), the network, decoding and writing. With `overlap`, a worker thread computes the next
    batch's channels while this thread runs the current batch: LAC first, whose ONNX Runtime session
    releases the GIL, then any channel this thread has not started yet. On two cores the stages run side
    by side, and whichever thread is ahead takes the jieba channel. At most two batches are held."""

    def __init__(
        self, predictor: Predictor, writer: PredictionWriter, summary: BatchSummary, bar: Progress, overlap: bool
    ):
        self.predictor, self.writer, self.summary, self.bar = predictor, writer, summary, bar
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-ner-features") if overlap else None
        self.in_flight: tuple[list[InputDocument], _BatchFeatures, Future] | None = None

    def submit(self, documents: list[InputDocument]) -> None:
        if not documents:
            return
        features = _BatchFeatures(self.predictor.features, [d.text for d in documents])
        if self.worker is None:
            self._write(documents, features, _run_now(features.compute, features.native_first))
            return
        computed = self.worker.submit(features.compute, features.native_first)
        self.finish()
        self.in_flight = documents, features, computed

    def finish(self) -> None:
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            self._write(*in_flight)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown(wait=True, cancel_futures=True)

    def _write(self, documents: list[InputDocument], features: _BatchFeatures, computed: Future) -> None:
        """Predict and write `documents`. Should the batch fail, each document is tried on its own and
        the ones that still fail are skipped with the error."""
        try:
            features.compute(features.others)
            computed.result()
            found = self.predictor.predict_encoded(self.predictor.encode(features.texts, features.values))
        except Exception:
            found = [_predict_alone(self.predictor, d) for d in documents]
        summary = self.summary
        for document, entities in zip(documents, found):
            if isinstance(entities, Skipped):
                _skip(entities, summary, self.bar)
                continue
            self.writer.write(document, entities)
            summary.documents += 1
            summary.entities += len(entities)
            summary.characters += len(document.text)
            summary.encodings[document.encoding] += 1
            self.bar.advance(size=document.size, characters=len(document.text))
        _release_freed_memory()


class _BatchFeatures:
    """The feature analyses of one batch of texts (`Featurizer.analyses`: the channels, and LAC also for
    its dense outputs), each computed once, by whichever thread claims it first. One LAC run gives the
    `lac` channel and the dense LAC features together."""

    def __init__(self, featurizer: Featurizer, texts: list[str]):
        self.featurizer, self.texts = featurizer, texts
        self.values: dict[str, list] = {}
        self.native_first = sorted(featurizer.analyses, key=lambda c: c not in NATIVE_CHANNELS)
        self.others = [c for c in featurizer.analyses if c not in NATIVE_CHANNELS]
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def compute(self, analyses: Sequence[str]) -> None:
        """Compute each of `analyses` that no thread has claimed yet."""
        for analysis in analyses:
            with self._lock:
                if analysis in self._claimed:
                    continue
                self._claimed.add(analysis)
            self.values.update(self.featurizer.analysis_values(analysis, self.texts))


def _run_now(work, *args) -> Future:
    """`work(*args)` run in this thread, as a finished future (its error, if any, inside)."""
    done: Future = Future()
    try:
        done.set_result(work(*args))
    except Exception as exc:
        done.set_exception(exc)
    return done


def _skip(item: Skipped, summary: BatchSummary, bar: Progress) -> None:
    summary.skipped.append(item)
    bar.note(f"skipped {item}")
    bar.advance(size=item.size, skipped=1)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _release_freed_memory() -> None:
    """Give the memory a batch freed back to the system. Without this, glibc keeps the freed heap of
    batches of varying sizes fragmented and the process grows slowly with the number of documents (the
    benchmark measured +56 MB from 270 to 540 documents with torch; flat with it)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _predict_alone(predictor: Predictor, document: InputDocument):
    try:
        return predictor.predict([document.text])[0]
    except Exception as exc:
        return Skipped(document.source, f"prediction failed ({type(exc).__name__}: {exc})", document.size)


def _total(counts) -> int | None:
    counts = list(counts)
    return None if any(c is None for c in counts) else sum(counts)


class Progress:
    """A tqdm bar on `stream` over the bytes of the inputs (documents differ in size, so bytes give the
    better time left), with the documents done, characters per second and skips beside it. On a terminal
    it is redrawn in place; elsewhere (a log file) a line is written every `interval` seconds. With no
    stream it only counts."""

    def __init__(
        self, stream: TextIO | None, total_documents: int | None, total_bytes: int, interval: float | None = None
    ):
        from tqdm import tqdm

        tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self.total_documents = total_documents
        self.documents = self.skipped = self.characters = 0
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=total_bytes or None,
            file=stream,
            disable=stream is None,
            unit="B",
            unit_scale=True,
            mininterval=interval if interval is not None else (0.2 if tty else 30.0),
            dynamic_ncols=tty,
            ascii=not tty,
            bar_format="{percentage:3.0f}% |{bar:20}| {desc} | elapsed {elapsed}, ETA {remaining}"
            if total_bytes
            else "{desc} | elapsed {elapsed}",
        )
        self._refresh_counts()

    def advance(self, size: int = 0, characters: int = 0, skipped: int = 0, predicted: bool = True) -> None:
        self.documents += 1
        self.skipped += skipped
        self.characters += characters
        self._refresh_counts(refresh=False)
        self.bar.update(size)

    def note(self, message: str) -> None:
        if not self.bar.disable:
            self.bar.write(message, file=self.bar.fp)

    def finish(self) -> None:
        self._refresh_counts()
        self.bar.close()

    def line(self) -> str:
        """The counts beside the bar: documents done (of the total), characters per second, skips."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        total = f"/{self.total_documents:,}" if self.total_documents is not None else ""
        parts = [f"{self.documents:,}{total} docs", f"{self.characters / elapsed:,.0f} chars/s"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return " | ".join(parts)

    def _refresh_counts(self, refresh: bool = True) -> None:
        self.bar.set_description_str(self.line(), refresh=refresh)


def print_summary(summary: BatchSummary, stream: TextIO | None = None, errors: TextIO | None = None) -> None:
    """The closing report (default: standard output): what was written, the encodings met; then every
    skipped input (default: standard error)."""
    stream, errors = stream or sys.stdout, errors or sys.stderr
    encodings = ", ".join(f"{name} {count}" for name, count in sorted(summary.encodings.items()))
    resumed = f" ({summary.resumed} already there)" if summary.resumed else ""
    print(
        f"wrote {summary.output}: {summary.documents} documents{resumed}, {summary.entities} entities, "
        f"{summary.characters:,} characters in {summary.seconds:.1f} s"
        + (f"; encodings: {encodings}" if encodings else ""),
        file=stream,
    )
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} input(s):", file=errors)
        for item in summary.skipped:
            print(f"  {item}", file=errors)
