"""The values every stage hands on: `Document`s with gold `Span`s, and the `Entity`s a tagger finds.

Offsets are Python `str` indices into the unmodified text (end exclusive), so characters outside the
BMP count once, as they do in Label Studio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    label: str

    def text_in(self, text: str) -> str:
        return text[self.start : self.end]


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    spans: tuple[Span, ...] = ()
    source: str = ""
    """Where the document came from, e.g. `annotations/corpus-v1.json#task=1001`."""

    def mentions(self) -> list[tuple[str, str]]:
        """(label, surface text) of every span, in text order."""
        return [(s.label, s.text_in(self.text)) for s in self.spans]


@dataclass(frozen=True)
class Entity:
    label: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)

    def as_span(self) -> Span:
        return Span(self.start, self.end, self.label)
