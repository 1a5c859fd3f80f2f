"""Per-character categorical features that an encoder trained from scratch on ~50k characters
cannot learn by itself. Each *channel* gives every character a small integer (0 = nothing):

- `jieba`: the character's position in its jieba word (begin/middle/end/single);
- `lac`: the character's Baidu LAC tag (part of speech, or PER/LOC/ORG/TIME with B/I), a prior
  learned from a large general corpus;
- `gazetteer`: inside a mention seen in the training annotations, with that mention's label (B/I);
- `money`: inside an amount of money (a number with 元/万/亿), split by whether a support word
  (补贴, 奖励, 资助 ...) comes before it in the same clause. Whether the amount is a subsidy is the
  model's call; the channel gives it exact edges and a hint.

A `Featurizer` packs the channels of a character into one integer (mixed radix) that travels
through BERT's `token_type_ids`; the model's `FeatureEmbedding` unpacks it and sums one embedding
per channel, so the feature ids stay one input tensor for PyTorch and exported graphs alike.

A featurizer may also give *dense* features (`dense`, names from `lexicon.LAC_DENSE`): LAC's BiGRU
states or emission scores per character, concatenated into one float vector per character that the
network projects into its embeddings (`network.PolicyNerBertForTokenClassification`). They come from the same LAC run
as the `lac` channel: LAC is an *analysis* that yields the channel and the dense outputs together.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..config import check_channels, check_dense_features
from ..types import Document
from .lexicon import (
    BOUNDARY_TYPES,
    LAC_DENSE,
    LAC_TAGS,
    SENTENCE_END,
    lac_analysis_many,
    lac_features_many,
    word_boundaries,
)

SUPPORT_WORDS = (
    "补贴",
    "补助",
    "奖励",
    "资助",
    "扶持",
    "奖补",
    "贴息",
    "津贴",
    "资金",
    "支持",
    "奖金",
    "给予",
    "发放",
    "补偿",
    "一次性",
    "最高",
    "不超过",
)
_NUMBER = r"(?:\d+(?:\.\d+)?|[零〇一二两三四五六七八九十百千]+)"
_UNIT = r"(?:万亿元|千万元|百万元|万元|亿元|元|万|亿)"
AMOUNT = _NUMBER + r"(?:\s*" + _UNIT + r")?(?:\s*(?:至|到|-|~|～|—|－)\s*" + _NUMBER + r")?\s*" + _UNIT
"""An amount of money: a number or a range, with its units (`300万`, `58.09万元`, `5万至10万元`)."""
_AMOUNT = re.compile(AMOUNT)
_CLAUSE_END = re.compile(r"[，,。；;！!？?\n]")
SUPPORT_WINDOW = 20
"""How many characters before an amount are searched for a support word."""

NO_SUPPORT, SUPPORT_IN_SENTENCE, SUPPORT_IN_CLAUSE = range(3)

NATIVE_CHANNELS = ("lac",)
"""Channels whose analyser runs in native code that releases the GIL (LAC's ONNX Runtime session):
batch prediction computes them in a worker thread while the network runs."""
DENSE_ANALYSIS = {name: "lac" for name in LAC_DENSE}
"""The analysis whose run gives each dense feature."""


def amount_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of every amount of money in `text`."""
    return [m.span() for m in _AMOUNT.finditer(text)]


def support_before(text: str, start: int, window: int = SUPPORT_WINDOW) -> int:
    """Where the nearest support word stands in the `window` characters before `start`: in the
    same clause (no comma between), elsewhere in the same sentence, or nowhere."""
    sentence = SENTENCE_END.split(text[max(0, start - window) : start])[-1]
    clause = _CLAUSE_END.split(sentence)[-1]
    if any(word in clause for word in SUPPORT_WORDS):
        return SUPPORT_IN_CLAUSE
    return SUPPORT_IN_SENTENCE if any(word in sentence for word in SUPPORT_WORDS) else NO_SUPPORT


def begin_inside_values(length: int, marks: Iterable[tuple[int, int, int]]) -> list[int]:
    """0 everywhere but in each (start, end, begin): `begin` on its first character, `begin + 1` on the rest."""
    values = [0] * length
    for start, end, begin in marks:
        values[start] = begin
        values[start + 1 : end] = [begin + 1] * (end - start - 1)
    return values


def money_values(text: str) -> list[int]:
    """0 outside amounts; inside, 1 + 2·support_before on the first character, one more on the rest."""
    return begin_inside_values(
        len(text), ((start, end, 1 + 2 * support_before(text, start)) for start, end in amount_spans(text))
    )


# --- gazetteer ----------------------------------------------------------------------------------

MIN_MENTION = 2
"""Shorter mentions (single characters) are too ambiguous to look up."""


def mention_votes(documents: Iterable[Document]) -> dict[str, Counter]:
    votes: dict[str, Counter] = defaultdict(Counter)
    for doc in documents:
        for span in doc.spans:
            mention = span.text_in(doc.text)
            if len(mention) >= MIN_MENTION:
                votes[mention][span.label] += 1
    return votes


def gazetteer_from(votes: dict[str, Counter]) -> dict[str, str]:
    """Each mention text with its most frequent label (ties: the label first seen)."""
    return {mention: counts.most_common(1)[0][0] for mention, counts in votes.items()}


def gazetteer_matches(text: str, gazetteer: dict[str, str]) -> list[tuple[int, int, str]]:
    """Leftmost-longest, non-overlapping matches of gazetteer mentions: (start, end, label)."""
    lengths = sorted({len(m) for m in gazetteer}, reverse=True)
    matches, i = [], 0
    while i < len(text):
        for length in lengths:
            label = gazetteer.get(text[i : i + length]) if i + length <= len(text) else None
            if label is not None:
                matches.append((i, i + length, label))
                i += length
                break
        else:
            i += 1
    return matches


def gazetteer_values(text: str, gazetteer: dict[str, str], labels: Sequence[str]) -> list[int]:
    """1 + 2·label index on a match's first character, one more on the rest; 0 elsewhere."""
    index = {label: i for i, label in enumerate(labels)}
    return begin_inside_values(
        len(text), ((start, end, 1 + 2 * index[label]) for start, end, label in gazetteer_matches(text, gazetteer))
    )


# --- packing channels into one id ---------------------------------------------------------------


def channel_size(channel: str, labels: Sequence[str]) -> int:
    return {"jieba": BOUNDARY_TYPES, "lac": 1 + LAC_TAGS, "gazetteer": 1 + 2 * len(labels), "money": 7}[channel]


@dataclass(frozen=True)
class Featurizer:
    """The feature channels of a model, with what they learned from training documents (the
    gazetteer); `values(text)` gives one packed feature id per character, `dense_many(texts)` the
    `dense` features of each character (a float32 array of (characters, `dense_size`))."""

    channels: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    gazetteer: dict[str, str] = field(default_factory=dict)
    dense: tuple[str, ...] = ()

    def __post_init__(self):
        problems = check_channels(self.channels) + check_dense_features(self.dense)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def dense_sizes(self) -> list[int]:
        return [LAC_DENSE[name] for name in self.dense]

    @property
    def dense_size(self) -> int:
        """Width of a character's dense feature vector (0: none)."""
        return sum(self.dense_sizes)

    @property
    def analyses(self) -> list[str]:
        """What computing the features runs, each once: every channel, and the analysis behind each
        dense feature (LAC, which is also the `lac` channel) when the channels do not already run it."""
        return list(dict.fromkeys([*self.channels, *(DENSE_ANALYSIS[name] for name in self.dense)]))

    @property
    def sizes(self) -> list[int]:
        return [channel_size(c, self.labels) for c in self.channels]

    @property
    def vocab_size(self) -> int:
        return math.prod(self.sizes)

    def fitted(self, documents: Sequence[Document]) -> Featurizer:
        """This featurizer with the gazetteer of `documents` (what prediction will use)."""
        if "gazetteer" not in self.channels:
            return self
        return replace(self, gazetteer=gazetteer_from(mention_votes(documents)))

    def values(self, text: str) -> list[int]:
        return self.values_many([text])[0]

    def values_many(self, texts: Sequence[str], ahead: dict[str, list] | None = None) -> list[list[int]]:
        """`values` of each text, computed together (the LAC channel batches sentences across texts);
        `ahead` maps channels already computed to their `channel_values` (and may hold more: what
        `analysis_values` gives)."""
        return self._packed(texts, [self.gazetteer] * len(texts), ahead)

    def channel_values(self, channel: str, texts: Sequence[str]) -> list[list[int]]:
        """One channel's values for each text (unpacked), e.g. for `values_many(texts, ahead=...)`."""
        return self._channel_values(channel, texts, [self.gazetteer] * len(texts))

    def analysis_values(self, analysis: str, texts: Sequence[str]) -> dict[str, list]:
        """What one of `analyses` gives for each text, keyed as `ahead` takes it: a channel's values
        under its name; for `lac`, with this featurizer's dense LAC outputs under theirs, from the
        same run of LAC."""
        if analysis != "lac":
            return {analysis: self.channel_values(analysis, texts)}
        lac = lac_analysis_many(texts, [name for name in self.dense if DENSE_ANALYSIS[name] == "lac"])
        return {"lac": lac.tags, **lac.dense}

    def features_many(
        self, texts: Sequence[str], ahead: dict[str, list] | None = None
    ) -> tuple[list[list[int]], list[np.ndarray] | None]:
        """`values_many` and `dense_many` of the texts, every analysis run once for both."""
        ahead = self._with_dense(texts, ahead)
        return self.values_many(texts, ahead), self.dense_many(texts, ahead)

    def dense_many(self, texts: Sequence[str], ahead: dict[str, list] | None = None) -> list[np.ndarray] | None:
        """Each text's dense features, (characters, `dense_size`) float32, zero on whitespace; None
        without dense features. `ahead` maps what is already computed (`analysis_values`)."""
        if not self.dense:
            return None
        ahead = self._with_dense(texts, ahead)
        return [
            np.concatenate([ahead[name][i] for name in self.dense], axis=1, dtype=np.float32) for i in range(len(texts))
        ]

    def _with_dense(self, texts: Sequence[str], ahead: dict[str, list] | None) -> dict[str, list]:
        """`ahead` completed with the analyses that the dense features need (and the channels they give)."""
        ahead = dict(ahead or {})
        for analysis in dict.fromkeys(DENSE_ANALYSIS[name] for name in self.dense if name not in ahead):
            ahead.update(self.analysis_values(analysis, texts))
        return ahead

    def training_gazetteers(
        self, documents: Sequence[Document], group: Callable[[str], str] = lambda d: d
    ) -> list[dict[str, str]]:
        """The gazetteer each training document is featurized with: built from the *other* documents
        (documents sharing `group(doc_id)` count as one), empty without a gazetteer channel. With its
        own mentions in the gazetteer a document would teach the model that a gazetteer match is always
        an entity; left out, it shows how often mentions recur in unseen text, as at prediction time."""
        if "gazetteer" not in self.channels:
            return [{} for _ in documents]
        held_out = {
            name: gazetteer_from(mention_votes(d for d in documents if group(d.doc_id) != name))
            for name in {group(d.doc_id) for d in documents}
        }
        return [held_out[group(doc.doc_id)] for doc in documents]

    def training_values(
        self, documents: Sequence[Document], group: Callable[[str], str] = lambda d: d
    ) -> list[list[int]]:
        """Feature ids of each training document, its gazetteer from `training_gazetteers`."""
        return self.values_for([doc.text for doc in documents], self.training_gazetteers(documents, group))

    def values_for(
        self, texts: Sequence[str], gazetteers: Sequence[dict[str, str]], ahead: dict[str, list] | None = None
    ) -> list[list[int]]:
        """Feature ids of each text, with its own gazetteer (`training_gazetteers`)."""
        return self._packed(texts, gazetteers, ahead)

    def features_for(
        self, texts: Sequence[str], gazetteers: Sequence[dict[str, str]]
    ) -> tuple[list[list[int]], list[np.ndarray] | None]:
        """`values_for` and `dense_many` of the texts, LAC run once for both."""
        ahead = self._with_dense(texts, None)
        return self.values_for(texts, gazetteers, ahead), self.dense_many(texts, ahead)

    def _packed(
        self,
        texts: Sequence[str],
        gazetteers: Sequence[dict[str, str]],
        ahead: dict[str, list] | None = None,
    ) -> list[list[int]]:
        packed = [[0] * len(text) for text in texts]
        radix = 1
        for channel, size in zip(self.channels, self.sizes):
            channel_values = (
                ahead[channel] if ahead and channel in ahead else self._channel_values(channel, texts, gazetteers)
            )
            for row, values in zip(packed, channel_values):
                row[:] = [total + value * radix for total, value in zip(row, values)]
            radix *= size
        # whitespace carries no token, and no feature
        return [[0 if ch.isspace() else v for ch, v in zip(text, row)] for text, row in zip(texts, packed)]

    def _channel_values(
        self, channel: str, texts: Sequence[str], gazetteers: Sequence[dict[str, str]]
    ) -> list[list[int]]:
        if channel == "lac":
            return lac_features_many(texts)
        if channel == "jieba":
            return [word_boundaries(text) for text in texts]
        if channel == "gazetteer":
            return [gazetteer_values(text, gazetteer, self.labels) for text, gazetteer in zip(texts, gazetteers)]
        return [money_values(text) for text in texts]

    def to_dict(self) -> dict:
        value = {"channels": list(self.channels), "labels": list(self.labels), "gazetteer": self.gazetteer}
        if self.dense:
            value["dense"] = list(self.dense)
        return value

    @classmethod
    def from_dict(cls, value: dict) -> Featurizer:
        return cls(
            tuple(value.get("channels", ())),
            tuple(value.get("labels", ())),
            dict(value.get("gazetteer", {})),
            tuple(value.get("dense", ())),
        )


NO_FEATURES = Featurizer()
