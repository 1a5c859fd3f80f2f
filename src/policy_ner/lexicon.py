"""Word-boundary features from jieba's dictionary (shipped inside its wheel, no download).

Each character gets the position of its character in the jieba word that contains it, so an
encoder trained from scratch on little data still sees where words begin and end.
"""

from __future__ import annotations

import functools
import logging

NONE, BEGIN, MIDDLE, END, SINGLE = range(5)
BOUNDARY_TYPES = 5
"""Distinct values of a boundary feature; the size of the token-type embedding that carries it."""


@functools.lru_cache(maxsize=1)
def _tokenizer():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    instance = jieba.Tokenizer()
    instance.initialize()
    return instance


def word_boundaries(text: str) -> list[int]:
    """BEGIN/MIDDLE/END/SINGLE per character of `text`; NONE on whitespace."""
    features: list[int] = []
    for word in _tokenizer().cut(text, HMM=True):
        if len(word) == 1:
            features.append(NONE if word.isspace() else SINGLE)
        else:
            features += [BEGIN] + [MIDDLE] * (len(word) - 2) + [END]
    return features
