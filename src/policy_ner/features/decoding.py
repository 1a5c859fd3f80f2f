"""Viterbi decoding of linear-chain scores, shared by our tagger (IOB2-constrained, with or without
CRF transitions) and by the Baidu LAC feature channel (LAC's own CRF transitions).

The dynamic programme runs compiled (numba): it visits every position of every document, and
per-position numpy calls, even batched over sequences, cost more than the rest of prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np


def best_paths(
    emissions: Sequence[np.ndarray], transitions: np.ndarray, start: np.ndarray | None = None
) -> list[list[int]]:
    """The highest-scoring tag path of each sequence. `emissions[i]` is (length_i, tags);
    `transitions[prev, next]` is added at each step (-inf forbids a step) and `start[tag]`, if given,
    at the first position. Sequences may have different lengths, including 0. Scores are added in the
    precision of the inputs (float32 emissions and transitions stay float32); ties go to the lower tag id."""
    dtype = np.result_type(np.asarray(transitions).dtype, *{np.asarray(e).dtype for e in emissions})
    step = np.ascontiguousarray(transitions, dtype=dtype)
    first = np.zeros(step.shape[0], dtype=dtype) if start is None else np.asarray(start, dtype=dtype)
    return [_viterbi(np.ascontiguousarray(e, dtype=dtype), step, first).tolist() if len(e) else [] for e in emissions]


@numba.njit(cache=True, nogil=True)
def _viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray) -> np.ndarray:
    length, n = emissions.shape
    backpointers = np.zeros((length, n), dtype=np.int32)
    score = start + emissions[0]
    following = np.empty_like(score)
    chosen = np.zeros(n, dtype=np.int32)
    for t in range(1, length):
        # previous tags in the outer loop, so that the inner loop runs along a row of `transitions`
        # (contiguous, and compiled to vector instructions)
        following[:] = score[0] + transitions[0]
        chosen[:] = 0
        for previous in range(1, n):
            for tag in range(n):
                candidate = score[previous] + transitions[previous, tag]
                better = candidate > following[tag]
                following[tag] = candidate if better else following[tag]
                chosen[tag] = previous if better else chosen[tag]
        backpointers[t] = chosen
        following += emissions[t]
        score, following = following, score
    path = np.empty(length, dtype=np.int64)
    path[length - 1] = np.argmax(score)
    for t in range(length - 1, 0, -1):
        path[t - 1] = backpointers[t, path[t]]
    return path
