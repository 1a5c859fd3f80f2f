"""Character IOB2 tags: the tag inventory of a label set, spans <-> tags, and which tag may follow which."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .types import Span


def tag_inventory(labels: Sequence[str]) -> list[str]:
    """`O`, then `B-X`, `I-X` for each label in the given order."""
    return ["O"] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]


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
    current: tuple[int, str] | None = None  # (start, label) of the span being read
    for i, tag in enumerate(list(tags) + ["O"]):
        continues = current is not None and tag.startswith("I-") and tag[2:] == current[1]
        if current is not None and not continues:
            spans.append(Span(current[0], i, current[1]))
            current = None
        if tag.startswith("B-") or (tag.startswith("I-") and current is None):
            current = (i, tag[2:])
    return spans


def iob2_transitions(tags: Sequence[str]) -> tuple[list[list[bool]], list[bool]]:
    """(allowed[prev][next], allowed_first[tag]) under IOB2: `I-X` only after `B-X` or `I-X`."""
    allowed = [
        [not tag.startswith("I-") or (prev[2:] == tag[2:] and prev[:2] in ("B-", "I-")) for tag in tags]
        for prev in tags
    ]
    return allowed, [not tag.startswith("I-") for tag in tags]
