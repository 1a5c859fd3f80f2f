"""Documents -> character IOB2 tags -> overlapping token windows for a token classifier.

Every character of a document is one "word" for the tokenizer. Characters that yield no token
(whitespace, control characters) carry no tag of their own; a tagged character's first sub-token
carries its tag. Windows overlap by `stride` tokens, so no text is dropped however long the
document, and an entity shorter than the overlap lies whole inside at least one window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import datasets

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
    `unit_tokens[u]` the index of the first token of unit u.
    """

    text: str
    input_ids: list[int]
    token_chars: list[int]
    units: list[int]
    unit_tokens: list[int]


def encode_text(text: str, tokenizer) -> EncodedText:
    if not text:
        return EncodedText(text, [], [], [], [])
    encoding = tokenizer(list(text), is_split_into_words=True, add_special_tokens=False,
                         return_attention_mask=False, return_token_type_ids=False)
    token_chars = encoding.word_ids()
    units, unit_tokens = [], []
    for k, char_index in enumerate(token_chars):
        if k == 0 or token_chars[k - 1] != char_index:
            units.append(char_index)
            unit_tokens.append(k)
    return EncodedText(text, list(encoding["input_ids"]), list(token_chars), units, unit_tokens)


def plan_windows(n_tokens: int, content_length: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of at most `content_length`, consecutive ones sharing `stride`
    tokens, covering every token. The last window is aligned to the end so it is full."""
    if n_tokens <= content_length:
        return [(0, n_tokens)] if n_tokens else []
    step = content_length - stride
    starts = list(range(0, n_tokens - content_length, step)) + [n_tokens - content_length]
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


def training_dataset(documents: Sequence[Document], tokenizer, tags: Sequence[str],
                     max_length: int, stride: int) -> datasets.Dataset:
    """One row per window: input_ids, labels (tag ids, IGNORE_INDEX where untagged), doc_id."""
    tag_to_id = {tag: i for i, tag in enumerate(tags)}
    rows = {"input_ids": [], "labels": [], "doc_id": [], "token_start": []}
    for doc in documents:
        encoded = encode_text(doc.text, tokenizer)
        labels = token_labels(encoded, char_tags(doc.text, doc.spans), tag_to_id)
        for start, end in plan_windows(len(encoded.input_ids), max_length - 2, stride):
            rows["input_ids"].append(with_special_tokens(encoded.input_ids[start:end], tokenizer))
            rows["labels"].append(with_special_tokens(labels[start:end], tokenizer, fill=IGNORE_INDEX))
            rows["doc_id"].append(doc.doc_id)
            rows["token_start"].append(start)
    return datasets.Dataset.from_dict(rows)
