"""Annotated documents -> training windows: each document tokenized and featurized once, labelled with
its character IOB2 tags, then cut into the same framed windows that prediction runs on
(`model.encoding.frame_window`), and collated into tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import datasets
import torch

from ..model.encoding import SpecialTokens, encode_text, frame_window, pad_windows, plan_windows, token_labels
from ..tags import char_tags
from ..types import Document


@dataclass(frozen=True)
class TrainingExample:
    """A whole document as token ids, token types and labels, before windowing."""

    doc_id: str
    input_ids: list[int]
    token_types: list[int]
    labels: list[int]


def training_examples(
    documents: Sequence[Document], tokenizer, tags: Sequence[str], char_features: Sequence[Sequence[int]] | None = None
) -> list[TrainingExample]:
    """One example per document; `char_features[i]` are document i's feature ids (none if omitted)."""
    tag_to_id = {tag: i for i, tag in enumerate(tags)}
    examples = []
    for i, doc in enumerate(documents):
        encoded = encode_text(doc.text, tokenizer, char_features[i] if char_features is not None else None)
        examples.append(
            TrainingExample(
                doc.doc_id,
                encoded.input_ids,
                encoded.token_types,
                token_labels(encoded, char_tags(doc.text, doc.spans), tag_to_id),
            )
        )
    return examples


def count_windows(examples: Sequence[TrainingExample], max_length: int, stride: int) -> int:
    """How many windows `training_windows` makes at the standard positions."""
    return sum(len(plan_windows(len(e.input_ids), max_length - 2, stride)) for e in examples)


def training_windows(
    examples: Sequence[TrainingExample], tokenizer, max_length: int, stride: int, shifts: Sequence[int] | None = None
) -> datasets.Dataset:
    """One row per window: input_ids, token_type_ids, labels (IGNORE_INDEX where untagged), doc_id,
    token_start. `shifts[i]` moves the inner windows of example i (see `plan_windows`)."""
    special = SpecialTokens.of(tokenizer)
    rows: dict[str, list] = {"input_ids": [], "token_type_ids": [], "labels": [], "doc_id": [], "token_start": []}
    for i, example in enumerate(examples):
        shift = shifts[i] if shifts is not None else 0
        for start, end in plan_windows(len(example.input_ids), max_length - 2, stride, shift):
            framed = frame_window(
                example.input_ids[start:end], example.token_types[start:end], example.labels[start:end], special=special
            )
            for key, value in framed.items():
                rows[key].append(value)
            rows["doc_id"].append(example.doc_id)
            rows["token_start"].append(start)
    return datasets.Dataset.from_dict(rows)


def collate(
    columns: Mapping[str, Sequence[Sequence[int]]], pad_id: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A batch of framed windows (`training_windows` columns: input_ids, token_type_ids, labels) as the
    forward pass's keyword arguments and the padded labels."""
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    arrays = pad_windows(rows, pad_id)
    labels = torch.from_numpy(arrays.pop("labels"))
    return {key: torch.from_numpy(value) for key, value in arrays.items()}, labels
