"""Mention-replacement augmentation: copies of the training documents in which entity mentions are
swapped for other mentions of the same label seen in training (台胞 -> 台资企业, 区委台办 ->
台商区民生保障局), so the model learns the contexts entities occur in, not only their surface forms.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from ..types import Document, Span


def mention_pool(documents: Sequence[Document]) -> dict[str, list[str]]:
    """Distinct mention texts per label, in first-seen order."""
    pool: dict[str, dict[str, None]] = defaultdict(dict)
    for doc in documents:
        for span in doc.spans:
            pool[span.label][span.text_in(doc.text)] = None
    return {label: list(mentions) for label, mentions in pool.items()}


def replace_mentions(
    doc: Document, pool: dict[str, list[str]], probability: float, rng: random.Random, suffix: str
) -> Document:
    """A copy of `doc` with each mention replaced, with `probability`, by a random pool mention of
    its label; spans are moved to the new offsets."""
    pieces, spans, cursor, shift = [], [], 0, 0
    for span in sorted(doc.spans, key=lambda s: s.start):
        mention = span.text_in(doc.text)
        candidates = pool.get(span.label, [])
        if candidates and rng.random() < probability:
            mention = rng.choice(candidates)
        pieces += [doc.text[cursor : span.start], mention]
        start = span.start + shift
        spans.append(Span(start, start + len(mention), span.label))
        shift += len(mention) - (span.end - span.start)
        cursor = span.end
    pieces.append(doc.text[cursor:])
    return Document(f"{doc.doc_id}{suffix}", "".join(pieces), tuple(spans))


COPY_MARK = "#aug"


def source_doc_id(doc_id: str) -> str:
    """The doc id an augmented copy was made from (the doc id itself for an original)."""
    return doc_id.split(COPY_MARK, 1)[0]


def augment(documents: Sequence[Document], copies: int, probability: float = 0.5, seed: int = 0) -> list[Document]:
    """`copies` mention-replaced copies of every document (the originals are not included)."""
    if copies <= 0:
        return []
    pool = mention_pool(documents)
    rng = random.Random(seed)
    return [
        replace_mentions(doc, pool, probability, rng, f"{COPY_MARK}{i + 1}") for i in range(copies) for doc in documents
    ]
