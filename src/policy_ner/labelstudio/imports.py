"""Other teams' NER data in, `Document`s out: character-per-line tag files (BIO, IOB2, BIOES, BMES) and
CLUENER-style JSON lines, with an optional label mapping and packing of short sentences into documents.

Such files hold one sentence per record; `pack_sentences` joins consecutive sentences into documents of
about `max_chars` characters so that training sees full windows instead of one short sentence per window.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write_json
from ..types import Document, Span
from .exports import read_tasks
from .formats import export_tasks

FORMATS = ("bio", "cluener")
"""`bio`: `char TAG` per line, a blank line between sentences (prefixes B/I/E/S/M, `O`); `cluener`:
JSON lines `{"text", "label": {type: {mention: [[start, end_inclusive], ...]}}}`."""


class ForeignDataError(ValueError):
    """A record of a foreign data set cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Sentence:
    text: str
    spans: tuple[Span, ...]
    line: int
    """Line of the file where the record starts (1-based)."""


@dataclass
class ImportSummary:
    sentences: int = 0
    characters: int = 0
    kept: Counter = field(default_factory=Counter)
    """Spans kept, by the label they carry after mapping."""
    dropped: Counter = field(default_factory=Counter)
    """Spans dropped because the mapping has no entry for their label, by source label."""

    @staticmethod
    def describe(counts: Counter) -> str:
        return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def read_sentences(path: str | Path, fmt: str) -> Iterator[Sentence]:
    if fmt == "bio":
        return read_tagged_characters(path)
    if fmt == "cluener":
        return read_cluener(path)
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def read_tagged_characters(path: str | Path) -> Iterator[Sentence]:
    """Sentences of a `char TAG` file. `B-X`/`S-X` open a span, `I-X`/`M-X` continue one, `E-X` continues and
    closes it; an `I-X` that continues nothing opens a span (as conlleval reads it)."""
    chars: list[str] = []
    tags: list[str] = []
    first_line = 1
    with open(path, encoding="utf-8") as lines:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if chars:
                    yield Sentence("".join(chars), tuple(_spans_of(tags)), first_line)
                chars, tags = [], []
                continue
            if not chars:
                first_line = number
            char, tag = _char_and_tag(line, path, number)
            chars.append(char)
            tags.append(tag)
    if chars:
        yield Sentence("".join(chars), tuple(_spans_of(tags)), first_line)


def _char_and_tag(line: str, path: str | Path, number: int) -> tuple[str, str]:
    # The character itself may be a space-like symbol only if the file separates with a tab.
    separator = "\t" if "\t" in line else " "
    char, _, tag = line.rpartition(separator)
    tag = tag.strip()
    if len(char) != 1 or not tag:
        raise ForeignDataError(f"{path}:{number}: expected one character and a tag, got {line!r}")
    if tag != "O" and (len(tag) < 3 or tag[1] not in "-_" or tag[0] not in "BIEMS"):
        raise ForeignDataError(f"{path}:{number}: tag {tag!r} is not O or B/I/E/S/M-<label>")
    return char, tag


def _spans_of(tags: list[str]) -> Iterator[Span]:
    start, label = None, ""
    for i, tag in enumerate(tags):
        prefix, tag_label = tag[0], tag[2:]
        continues = start is not None and prefix in "IME" and tag_label == label
        if start is not None and not continues:
            yield Span(start, i, label)
            start = None
        if tag == "O":
            continue
        if start is None:
            start, label = i, tag_label
        if prefix in "ES":
            yield Span(start, i + 1, label)
            start = None
    if start is not None:
        yield Span(start, len(tags), label)


def read_cluener(path: str | Path) -> Iterator[Sentence]:
    """Sentences of CLUENER JSON lines; every mention's offsets are checked against its text."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text, labels = record["text"], record.get("label") or {}
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ForeignDataError(f"{path}:{number}: not a CLUENER record ({exc})") from exc
            spans = []
            for label, mentions in labels.items():
                for mention, offsets in mentions.items():
                    for start, end_inclusive in offsets:
                        if text[start : end_inclusive + 1] != mention:
                            raise ForeignDataError(
                                f"{path}:{number}: {label} [{start}, {end_inclusive}] is "
                                f"{text[start : end_inclusive + 1]!r} in the text, not {mention!r}"
                            )
                        spans.append(Span(start, end_inclusive + 1, label))
            yield Sentence(text, tuple(sorted(spans)), number)


def map_spans(spans: Iterable[Span], mapping: Mapping[str, str] | None) -> tuple[tuple[Span, ...], list[str]]:
    """(spans relabelled by `mapping` (source label -> label), source labels of the spans it has no entry
    for); without a mapping every span is kept as it is."""
    kept, dropped = [], []
    for span in spans:
        label = span.label if mapping is None else mapping.get(span.label)
        if label is None:
            dropped.append(span.label)
        else:
            kept.append(Span(span.start, span.end, label))
    return tuple(kept), dropped


def pack_sentences(
    sentences: Iterable[Sentence], max_chars: int, separator: str = "\n"
) -> Iterator[tuple[str, tuple[Span, ...], int]]:
    """Consecutive sentences joined by `separator` into (text, spans, first line) of at most `max_chars`
    characters (a longer sentence stays alone); `max_chars <= 0` keeps one sentence per document."""
    texts: list[str] = []
    spans: list[Span] = []
    length, first_line = 0, 0
    for sentence in sentences:
        added = len(sentence.text) + (len(separator) if texts else 0)
        if texts and (max_chars <= 0 or length + added > max_chars):
            yield separator.join(texts), tuple(spans), first_line
            texts, spans, length = [], [], 0
            added = len(sentence.text)
        if not texts:
            first_line = sentence.line
        offset = length + (added - len(sentence.text))
        spans += [Span(s.start + offset, s.end + offset, s.label) for s in sentence.spans]
        texts.append(sentence.text)
        length += added
    if texts:
        yield separator.join(texts), tuple(spans), first_line


def import_documents(
    path: str | Path,
    fmt: str,
    *,
    mapping: Mapping[str, str] | None = None,
    max_chars: int = 0,
    id_prefix: str | None = None,
    require_labels: Iterable[str] = (),
) -> tuple[list[Document], ImportSummary]:
    """Documents of a foreign NER file, their spans mapped by `mapping` and short sentences packed to
    `max_chars`. With `require_labels`, only sentences holding a span of one of those (mapped) labels."""
    summary = ImportSummary()
    required = frozenset(require_labels)
    prefix = id_prefix if id_prefix is not None else Path(path).stem

    def selected() -> Iterator[Sentence]:
        for sentence in read_sentences(path, fmt):
            spans, dropped = map_spans(sentence.spans, mapping)
            if required and not any(s.label in required for s in spans):
                continue
            summary.kept.update(s.label for s in spans)
            summary.dropped.update(dropped)
            summary.sentences += 1
            summary.characters += len(sentence.text)
            yield Sentence(sentence.text, spans, sentence.line)

    documents = [
        Document(doc_id=f"{prefix}-L{line}", text=text, spans=spans, source=f"{path}:{line}")
        for text, spans, line in pack_sentences(selected(), max_chars)
    ]
    return documents, summary


def write_export(documents: list[Document], labels: Iterable[str], output: str | Path) -> list[dict]:
    """Write `documents` atomically as a Label Studio export after reading it back as the exporter would:
    offsets and overlaps are checked (not span edges: the data set's own conventions may put punctuation
    there). Raises `AnnotationError` naming every problem, and then writes nothing."""
    tasks = export_tasks(documents)
    read_tasks(tasks, labels, str(output), edge_punctuation="").raise_for_issues()
    atomic_write_json(output, tasks)
    return tasks
