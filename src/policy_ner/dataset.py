"""Documents -> character IOB2 tags -> overlapping token windows for a token classifier.

Every character of a document is one "word" for the tokenizer. Characters that yield no token
(whitespace, control characters) carry no tag of their own; a tagged character's first sub-token
carries its tag. Windows overlap by `stride` tokens, so no text is dropped however long the
document, and an entity shorter than the overlap lies whole inside at least one window.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterable, Sequence

import datasets
import torch

from .annotations import Document, Span

IGNORE_INDEX = -100


def char_tags(text: str, spans: Iterable[Span]) -> list[str]:
    """IOB2 tag per character: `B-X` on an entity's first character, `I-X` on the rest."""
    tags = ["O"] * len(text)
    for span in spans:
        tags[span.start] = f"B-{span.label}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.label}"
    return tags


def spans_from_tags(tags: Sequence[str]) -> list[Span]:
    """Spans of a valid IOB2 sequence (as produced by `char_tags` or constrained decoding)."""
    spans: list[Span] = []
    start, label = None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        continues = tag.startswith("I-") and tag[2:] == label
        if start is not None and not continues:
            spans.append(Span(start, i, label))
            start, label = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, label = i, tag[2:]
    return spans


@dataclass(frozen=True)
class EncodedText:
    """A text tokenized one character at a time.

    `input_ids[k]` is the k-th token; `token_chars[k]` the character it came from. `units` lists,
    in order, the characters that produced at least one token (the ones that get a tag), and
    `unit_tokens[u]` the index of the first token of unit u. `token_types` carries the packed
    feature id of each token's character (features.py; all 0 without features).
    """

    text: str
    input_ids: list[int]
    token_chars: list[int]
    units: list[int]
    unit_tokens: list[int]
    token_types: list[int]


def encode_text(text: str, tokenizer, char_features: Sequence[int] | None = None) -> EncodedText:
    """`text` tokenized one character at a time; `char_features` holds one feature id per character."""
    token_ids = char_token_ids(tokenizer, text)
    input_ids, token_chars, units, unit_tokens = [], [], [], []
    for char_index, char in enumerate(text):
        ids = token_ids[char]
        if ids:
            units.append(char_index)
            unit_tokens.append(len(input_ids))
            input_ids += ids
            token_chars += [char_index] * len(ids)
    token_types = [char_features[c] for c in token_chars] if char_features is not None else [0] * len(token_chars)
    return EncodedText(text, input_ids, token_chars, units, unit_tokens, token_types)


_TOKENS_OF_CHAR: "weakref.WeakKeyDictionary[object, dict[str, list[int]]]" = weakref.WeakKeyDictionary()


def char_token_ids(tokenizer, text: str) -> dict[str, list[int]]:
    """The token ids of each character of `text` as its own word (none for whitespace), remembered per
    tokenizer: a character is tokenized the same way wherever it stands, and a corpus has a few
    thousand distinct characters, so each is run through the tokenizer once."""
    known = _TOKENS_OF_CHAR.setdefault(tokenizer, {})
    new = [char for char in dict.fromkeys(text) if char not in known]
    if new:
        encoding = tokenizer(new, is_split_into_words=True, add_special_tokens=False,
                             return_attention_mask=False, return_token_type_ids=False)
        tokens: dict[str, list[int]] = {char: [] for char in new}
        for token_id, word in zip(encoding["input_ids"], encoding.word_ids()):
            tokens[new[word]].append(token_id)
        known.update(tokens)  # complete entries only: another thread may be reading
    return known


def plan_windows(n_tokens: int, content_length: int, stride: int, shift: int = 0) -> list[tuple[int, int]]:
    """[start, end) token ranges of at most `content_length`, consecutive ones sharing at least
    `stride` tokens, covering every token. The last window is aligned to the end so it is full.

    `shift` (0 <= shift < content_length - stride) moves the inner windows right, so training can
    show the model each passage at other window positions from epoch to epoch.
    """
    if n_tokens <= content_length:
        return [(0, n_tokens)] if n_tokens else []
    step = content_length - stride
    starts = sorted({0, *range(shift or step, n_tokens - content_length, step), n_tokens - content_length})
    return [(s, s + content_length) for s in starts]


def token_labels(encoded: EncodedText, tags: Sequence[str], tag_to_id: dict[str, int]) -> list[int]:
    """Tag id on each character's first token, IGNORE_INDEX on continuation sub-tokens."""
    labels = [IGNORE_INDEX] * len(encoded.input_ids)
    for char_index, token_index in zip(encoded.units, encoded.unit_tokens):
        labels[token_index] = tag_to_id[tags[char_index]]
    return labels


def with_special_tokens(ids: list[int], tokenizer, fill: int | None = None) -> list[int]:
    """[CLS] ids [SEP]; with `fill`, that value stands at the special positions instead."""
    cls = tokenizer.cls_token_id if fill is None else fill
    sep = tokenizer.sep_token_id if fill is None else fill
    return [cls] + ids + [sep]


@dataclass(frozen=True)
class TrainingExample:
    """A whole document as token ids, token types and labels, before windowing."""

    doc_id: str
    input_ids: list[int]
    token_types: list[int]
    labels: list[int]


def training_examples(documents: Sequence[Document], tokenizer, tags: Sequence[str],
                      char_features: Sequence[Sequence[int]] | None = None) -> list[TrainingExample]:
    """One example per document; `char_features[i]` are document i's feature ids (none if omitted)."""
    tag_to_id = {tag: i for i, tag in enumerate(tags)}
    examples = []
    for i, doc in enumerate(documents):
        encoded = encode_text(doc.text, tokenizer, char_features[i] if char_features is not None else None)
        examples.append(TrainingExample(doc.doc_id, encoded.input_ids, encoded.token_types,
                                        token_labels(encoded, char_tags(doc.text, doc.spans), tag_to_id)))
    return examples


def count_windows(examples: Sequence[TrainingExample], max_length: int, stride: int) -> int:
    """How many windows `training_windows` makes at the standard positions."""
    return sum(len(plan_windows(len(e.input_ids), max_length - 2, stride)) for e in examples)


def training_windows(examples: Sequence[TrainingExample], tokenizer, max_length: int, stride: int,
                     shifts: Sequence[int] | None = None) -> datasets.Dataset:
    """One row per window: input_ids, token_type_ids, labels (IGNORE_INDEX where untagged), doc_id,
    token_start. `shifts[i]` moves the inner windows of example i (see `plan_windows`)."""
    rows = {"input_ids": [], "token_type_ids": [], "labels": [], "doc_id": [], "token_start": []}
    for i, example in enumerate(examples):
        shift = shifts[i] if shifts is not None else 0
        for start, end in plan_windows(len(example.input_ids), max_length - 2, stride, shift):
            rows["input_ids"].append(with_special_tokens(example.input_ids[start:end], tokenizer))
            rows["token_type_ids"].append(with_special_tokens(example.token_types[start:end], tokenizer, fill=0))
            rows["labels"].append(with_special_tokens(example.labels[start:end], tokenizer, fill=IGNORE_INDEX))
            rows["doc_id"].append(example.doc_id)
            rows["token_start"].append(start)
    return datasets.Dataset.from_dict(rows)


def pad_batch(rows: Sequence[Sequence[int]], fill: int) -> torch.Tensor:
    """A (len(rows), longest row) tensor, each row right-padded with `fill`."""
    batch = torch.full((len(rows), max(len(r) for r in rows)), fill, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return batch


def model_inputs(input_ids: Sequence[Sequence[int]], token_types: Sequence[Sequence[int]], pad_id: int
                 ) -> dict[str, torch.Tensor]:
    """Keyword arguments of a token classifier's forward pass for windows with special tokens."""
    return {"input_ids": pad_batch(input_ids, pad_id),
            "attention_mask": pad_batch([[1] * len(row) for row in input_ids], 0),
            "token_type_ids": pad_batch(token_types, 0)}


def training_dataset(documents: Sequence[Document], tokenizer, tags: Sequence[str], max_length: int,
                     stride: int, char_features: Sequence[Sequence[int]] | None = None) -> datasets.Dataset:
    """Windows of `documents` at the standard positions."""
    return training_windows(training_examples(documents, tokenizer, tags, char_features), tokenizer,
                            max_length, stride)
