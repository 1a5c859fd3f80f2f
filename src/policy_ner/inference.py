"""Trained model directory -> `Predictor` -> entities with exact character offsets.

Long texts are cut into the same overlapping windows as in training. Each token keeps the scores
of the window in which it sits furthest from an edge (most context on both sides), and the whole
document is then decoded at once with IOB2-constrained Viterbi, so an entity crossing a window
boundary comes out whole and no invalid tag sequence (an `I-X` after `O` or after another label)
is ever emitted.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from .annotations import Span
from .features import NO_FEATURES, Featurizer
from .modeling import crf_parameters, iob2_transitions
from .dataset import EncodedText, encode_text, model_inputs, plan_windows, spans_from_tags, with_special_tokens
from .registry import read_model_settings



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


def viterbi(scores: np.ndarray, tags: Sequence[str], transitions: np.ndarray | None = None,
            start: np.ndarray | None = None) -> list[int]:
    """Best tag sequence under the IOB2 constraints. `scores` is (length, tags): log-probabilities
    for a softmax model, emission scores for a CRF, whose `transitions[prev, next]` and `start`
    scores are then added."""
    length, n = scores.shape
    if length == 0:
        return []
    allowed, allowed_first = (np.array(m, dtype=bool) for m in iob2_transitions(tags))
    penalty = np.where(allowed, 0.0 if transitions is None else transitions, -np.inf)
    first = scores[0] + (0.0 if start is None else start)
    score = np.where(allowed_first, first, -np.inf)
    backpointers = np.zeros((length, n), dtype=np.int64)
    for t in range(1, length):
        candidates = score[:, None] + penalty  # (prev, next)
        backpointers[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + scores[t]
    best = [int(score.argmax())]
    for t in range(length - 1, 0, -1):
        best.append(int(backpointers[t, best[-1]]))
    return best[::-1]


class Predictor:
    """Finds entities in raw texts. Offsets index the unmodified input `str`."""

    def __init__(self, model, tokenizer, tags: Sequence[str], max_length: int, stride: int,
                 batch_size: int = 16, features: Featurizer = NO_FEATURES, version: str = ""):
        self.model = model.eval()
        self.features = features
        self.tokenizer = tokenizer
        self.tags = list(tags)
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.version = version
        crf = crf_parameters(model)
        self.crf = (np.array(crf["transitions"]), np.array(crf["start"])) if crf else (None, None)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, batch_size: int = 16) -> "Predictor":
        model_dir = Path(model_dir)
        settings = read_model_settings(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForTokenClassification.from_pretrained(model_dir)
        return cls(model, tokenizer, settings["tags"], settings["max_length"], settings["stride"],
                   batch_size=batch_size, features=Featurizer.from_dict(settings.get("features", {})),
                   version=settings.get("version", model_dir.name))

    @property
    def labels(self) -> list[str]:
        return [tag[2:] for tag in self.tags if tag.startswith("B-")]

    def encode(self, text: str) -> EncodedText:
        return encode_text(text, self.tokenizer, self.features.values(text))

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        encoded = [self.encode(text) for text in texts]
        return [self._decode(enc, scores) for enc, scores in zip(encoded, self._token_scores(encoded))]

    def predict_one(self, text: str) -> list[Entity]:
        return self.predict([text])[0]

    def predict_with_uncertainty(self, texts: Sequence[str]) -> list[tuple[list[Entity], float]]:
        """`predict`'s entities and, per text, its `tag_margin_uncertainty` (one pass of the model)."""
        encoded = [self.encode(text) for text in texts]
        return [(self._decode(enc, scores), tag_margin_uncertainty(scores[enc.unit_tokens]))
                for enc, scores in zip(encoded, self._token_scores(encoded))]

    def _token_scores(self, encoded: Sequence[EncodedText]) -> list[np.ndarray]:
        """Per document, the logits of each token from the window where it is most central."""
        content = self.max_length - 2
        windows = [(doc, start, end) for doc, enc in enumerate(encoded)
                   for start, end in plan_windows(len(enc.input_ids), content, self.stride)]
        windows.sort(key=lambda w: w[2] - w[1], reverse=True)  # similar lengths batch together
        out = [np.zeros((len(enc.input_ids), len(self.tags)), dtype=np.float32) for enc in encoded]
        best_margin = [np.full(len(enc.input_ids), -1, dtype=np.int64) for enc in encoded]
        for batch in _chunks(windows, self.batch_size):
            batch_logits = self._run_model([encoded[d].input_ids[s:e] for d, s, e in batch],
                                              [encoded[d].token_types[s:e] for d, s, e in batch])
            for (doc, start, end), window_logits in zip(batch, batch_logits):
                positions = np.arange(start, end)
                margin = np.minimum(positions - start, end - 1 - positions)
                better = margin > best_margin[doc][start:end]
                out[doc][start:end][better] = window_logits[1:1 + end - start][better]
                best_margin[doc][start:end][better] = margin[better]
        return out

    @torch.inference_mode()
    def _run_model(self, token_windows: list[list[int]], type_windows: list[list[int]]) -> np.ndarray:
        inputs = model_inputs([with_special_tokens(w, self.tokenizer) for w in token_windows],
                              [with_special_tokens(t, self.tokenizer, fill=0) for t in type_windows],
                              self.tokenizer.pad_token_id)
        logits = self.model(**inputs).logits
        return logits.float().numpy()

    def _decode(self, encoded: EncodedText, token_logits: np.ndarray) -> list[Entity]:
        unit_logits = token_logits[encoded.unit_tokens]
        unit_log_probs = unit_logits - np.logaddexp.reduce(unit_logits, axis=1, keepdims=True)
        transitions, start = self.crf
        path = viterbi(unit_logits if transitions is not None else unit_log_probs, self.tags, transitions, start)
        entities = []
        for span in spans_from_tags([self.tags[i] for i in path]):
            first_char = encoded.units[span.start]
            last_char = encoded.units[span.end - 1]
            chosen = unit_log_probs[np.arange(span.start, span.end), path[span.start:span.end]]
            entities.append(Entity(span.label, first_char, last_char + 1,
                                   encoded.text[first_char:last_char + 1],
                                   round(float(np.exp(chosen).mean()), 4)))
        return entities


def tag_margin_uncertainty(unit_logits: np.ndarray) -> float:
    """How unsure the model is of a text, for active learning: the mean over its characters of
    1 - (p1 - p2), p1 and p2 the probabilities of its two likeliest tags. 0 when every character is
    certain, near 1 when the model cannot choose. Characters in `O` count too, so a text where an
    entity may have been missed scores high; the mean, not the sum, keeps long texts from winning
    by their length alone."""
    if len(unit_logits) == 0:
        return 0.0
    log_probs = unit_logits - np.logaddexp.reduce(unit_logits, axis=1, keepdims=True)
    top_two = np.sort(np.exp(log_probs), axis=1)[:, -2:]
    return float(np.mean(1.0 - (top_two[:, 1] - top_two[:, 0])))


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def read_text_inputs(inputs: Iterable[str | Path]) -> Iterator[tuple[str, str, Path]]:
    """(doc_id, text, path) for `.txt` files and for the `.txt` files inside folders (sorted).

    doc_id is the file name without `.txt`. Files are read as UTF-8 (a BOM is removed), unmodified.
    """
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                raise FileNotFoundError(f"{path}: folder holds no .txt files")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{file}: not valid UTF-8 ({exc})") from None
            yield file.stem if file.suffix == ".txt" else file.name, text, file


def prediction_record(doc_id: str, text: str, entities: Sequence[Entity]) -> dict:
    return {"doc_id": doc_id, "text": text, "entities": [e.to_dict() for e in entities]}


def read_predictions(path: str | Path) -> list[dict]:
    """Records of a prediction JSONL file, each checked for exact offsets."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_number}: not JSON ({exc})") from None
            for entity in record.get("entities", []):
                if record["text"][entity["start"]:entity["end"]] != entity["text"]:
                    raise ValueError(f"{path}:{line_number}: doc {record.get('doc_id')}: entity "
                                     f"{entity} does not match the text at its offsets")
            records.append(record)
    return records


def set_threads(threads: int = 0) -> int:
    """Use `threads` intra-op threads, or one per core available to this process when 0."""
    if threads <= 0:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads
