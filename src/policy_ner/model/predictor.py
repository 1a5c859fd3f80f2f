"""Trained model directory -> `Predictor` -> entities with exact character offsets.

Long texts are cut into the same overlapping windows as in training. Each token keeps the scores
of the window in which it sits furthest from an edge (most context on both sides), and the whole
document is then decoded at once with IOB2-constrained Viterbi, so an entity crossing a window
boundary comes out whole and no invalid tag sequence (an `I-X` after `O` or after another label)
is ever emitted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoModelForTokenClassification, AutoTokenizer

from ..cpu import available_cores
from ..features.channels import NATIVE_CHANNELS, NO_FEATURES, Featurizer
from ..features.decoding import best_paths
from ..features.lexicon import set_lac_threads
from ..scoring import PredictedDocument
from ..tags import iob2_transitions, spans_from_tags
from ..types import Document, Entity
from .devices import resolve_device
from .encoding import EncodedText, SpecialTokens, encode_text, frame_window, pad_windows, plan_windows
from .network import crf_parameters
from .registry import ModelFilesError, read_model_settings, verify_model_files
from .runtimes import RUNTIMES, OnnxRuntime, Runtime, TorchRuntime, onnx_model_path


def viterbi(
    scores: np.ndarray, tags: Sequence[str], transitions: np.ndarray | None = None, start: np.ndarray | None = None
) -> list[int]:
    """Best tag sequence under the IOB2 constraints. `scores` is (length, tags): log-probabilities
    for a softmax model, emission scores for a CRF, whose `transitions[prev, next]` and `start`
    scores are then added."""
    return viterbi_batch([scores], tags, transitions, start)[0]


def viterbi_batch(
    scores: Sequence[np.ndarray],
    tags: Sequence[str],
    transitions: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> list[list[int]]:
    """`viterbi` of each sequence (`decoding.best_paths` under the IOB2 constraints)."""
    allowed, allowed_first = (np.array(m, dtype=bool) for m in iob2_transitions(tags))
    penalty = np.where(allowed, 0.0 if transitions is None else transitions, -np.inf)
    first = np.where(allowed_first, 0.0 if start is None else start, -np.inf)
    return best_paths(scores, penalty, first)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
"""What `AutoTokenizer` reads a saved tokenizer from (fast, or a WordPiece vocabulary)."""


class Predictor:
    """Finds entities in raw texts. Offsets index the unmodified input `str`.

    `model` is a torch token classifier. Another `runtime` (an `OnnxRuntime`) may stand in for it, with
    `model` None and the CRF's scores, if any, given as `crf` (as saved in the model settings)."""

    def __init__(
        self,
        model,
        tokenizer,
        tags: Sequence[str],
        max_length: int,
        stride: int,
        batch_size: int = 16,
        features: Featurizer = NO_FEATURES,
        version: str = "",
        runtime: Runtime | None = None,
        crf: dict | None = None,
    ):
        self.model = model.eval() if model is not None else None
        self.runtime = runtime or TorchRuntime(model)
        self.features = features
        self.tokenizer = tokenizer
        self.special = SpecialTokens.of(tokenizer)
        self.tags = list(tags)
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.version = version
        crf = crf_parameters(model) if model is not None else crf
        self.crf = (np.array(crf["transitions"]), np.array(crf["start"])) if crf else (None, None)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        batch_size: int = 16,
        runtime: str = "torch",
        threads: int = 0,
        onnx_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> Predictor:
        """`runtime` is one of RUNTIMES; the ONNX ones read `export_onnx`'s files from `onnx_dir`
        (default MODEL_DIR/onnx) and use `threads` intra-op threads (0: one per available core).
        The torch runtime runs on `device` (`auto`, `cpu`, `cuda`, `mps`; see `devices.resolve_device`)."""
        model_dir = Path(model_dir)
        settings = read_model_settings(model_dir)
        verify_model_files(model_dir)
        if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
            raise ModelFilesError(
                f"{model_dir}: no tokenizer ({' or '.join(TOKENIZER_FILES)}); the model folder is incomplete"
            )
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        common = dict(
            batch_size=batch_size,
            features=Featurizer.from_dict(settings.get("features", {})),
            version=settings.get("version", model_dir.name),
        )
        if runtime == "torch":
            try:
                model = AutoModelForTokenClassification.from_pretrained(model_dir)
            except (OSError, SafetensorError) as exc:
                raise ModelFilesError(f"{model_dir}: the weights cannot be read ({exc})") from None
            model.to(resolve_device(device))
            return cls(model, tokenizer, settings["tags"], settings["max_length"], settings["stride"], **common)
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
        path = onnx_model_path(model_dir, quantized=runtime == "onnx-int8", onnx_dir=onnx_dir)
        return cls(
            None,
            tokenizer,
            settings["tags"],
            settings["max_length"],
            settings["stride"],
            **common,
            runtime=OnnxRuntime(path, threads),
            crf=settings.get("crf"),
        )

    @property
    def labels(self) -> list[str]:
        return [tag[2:] for tag in self.tags if tag.startswith("B-")]

    def encode(self, texts: Sequence[str], ahead: dict[str, list] | None = None) -> list[EncodedText]:
        """Each text tokenized, with its feature ids and dense features (computed for all the texts
        together; `ahead` maps analyses already computed to their `features.analysis_values(analysis,
        texts)`)."""
        values, dense = self.features.features_many(texts, ahead)
        return [
            encode_text(text, self.tokenizer, ids, dense[i] if dense is not None else None)
            for i, (text, ids) in enumerate(zip(texts, values))
        ]

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        return self.predict_encoded(self.encode(texts))

    def predict_encoded(self, encoded: Sequence[EncodedText]) -> list[list[Entity]]:
        """The entities of texts already `encode`d."""
        return self.entities_from_scores(encoded, self.token_scores(encoded))

    def predict_one(self, text: str) -> list[Entity]:
        return self.predict([text])[0]

    def predict_with_uncertainty(self, texts: Sequence[str]) -> list[tuple[list[Entity], float]]:
        """`predict`'s entities and, per text, its `tag_margin_uncertainty` (one pass of the model)."""
        encoded = self.encode(texts)
        scores = self.token_scores(encoded)
        return list(
            zip(
                self.entities_from_scores(encoded, scores),
                (tag_margin_uncertainty(s[enc.unit_tokens]) for enc, s in zip(encoded, scores)),
            )
        )

    def token_scores(self, encoded: Sequence[EncodedText]) -> list[np.ndarray]:
        """Per document, the logits of each token from the window where it is most central."""
        windows = [
            (doc, start, end)
            for doc, enc in enumerate(encoded)
            for start, end in plan_windows(len(enc.input_ids), self.max_length - 2, self.stride)
        ]
        windows.sort(key=lambda w: w[2] - w[1], reverse=True)  # similar lengths batch together
        out = [np.zeros((len(enc.input_ids), len(self.tags)), dtype=np.float32) for enc in encoded]
        best_margin = [np.full(len(enc.input_ids), -1, dtype=np.int64) for enc in encoded]
        for batch in _chunks(windows, self.batch_size):
            arrays = pad_windows(self.framed_windows(encoded, batch), self.special.pad)
            batch_logits = self.runtime.logits(
                arrays["input_ids"], arrays["attention_mask"], arrays["token_type_ids"], arrays.get("dense_features")
            )
            for (doc, start, end), window_logits in zip(batch, batch_logits):
                positions = np.arange(start, end)
                margin = np.minimum(positions - start, end - 1 - positions)
                better = margin > best_margin[doc][start:end]
                out[doc][start:end][better] = window_logits[1 : 1 + end - start][better]
                best_margin[doc][start:end][better] = margin[better]
        return out

    def framed_windows(
        self, encoded: Sequence[EncodedText], windows: Sequence[tuple[int, int, int]]
    ) -> list[dict[str, Any]]:
        """The (document, start token, end token) `windows` of `encoded` texts framed for the network."""
        return [_framed(encoded[doc], start, end, self.special) for doc, start, end in windows]

    def entities_from_scores(
        self, encoded: Sequence[EncodedText], token_logits: Sequence[np.ndarray]
    ) -> list[list[Entity]]:
        """Each text's entities, decoded from its `token_scores` under the IOB2 constraints."""
        unit_logits = [logits[enc.unit_tokens] for enc, logits in zip(encoded, token_logits)]
        unit_log_probs = [log_softmax(logits) for logits in unit_logits]
        transitions, start = self.crf
        scores = unit_logits if transitions is not None else unit_log_probs
        paths = viterbi_batch(scores, self.tags, transitions, start)
        return [self._entities(enc, log_probs, path) for enc, log_probs, path in zip(encoded, unit_log_probs, paths)]

    def _entities(self, encoded: EncodedText, unit_log_probs: np.ndarray, path: list[int]) -> list[Entity]:
        entities = []
        for span in spans_from_tags([self.tags[i] for i in path]):
            first_char = encoded.units[span.start]
            last_char = encoded.units[span.end - 1]
            chosen = unit_log_probs[np.arange(span.start, span.end), path[span.start : span.end]]
            entities.append(
                Entity(
                    span.label,
                    first_char,
                    last_char + 1,
                    encoded.text[first_char : last_char + 1],
                    round(float(np.exp(chosen).mean()), 4),
                )
            )
        return entities


def _framed(encoded: EncodedText, start: int, end: int, special: SpecialTokens) -> dict[str, Any]:
    dense = encoded.dense
    return frame_window(
        encoded.input_ids[start:end],
        encoded.token_types[start:end],
        special=special,
        dense=dense[start:end] if dense is not None else None,
    )


def tag_margin_uncertainty(unit_logits: np.ndarray) -> float:
    """How unsure the model is of a text, for active learning: the mean over its characters of
    1 - (p1 - p2), p1 and p2 the probabilities of its two likeliest tags. 0 when every character is
    certain, near 1 when the model cannot choose. Characters in `O` count too, so a text where an
    entity may have been missed scores high; the mean, not the sum, keeps long texts from winning
    by their length alone."""
    if len(unit_logits) == 0:
        return 0.0
    top_two = np.sort(np.exp(log_softmax(unit_logits)), axis=1)[:, -2:]
    return float(np.mean(1.0 - (top_two[:, 1] - top_two[:, 0])))


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def set_threads(threads: int = 0, overlapped: bool = False) -> int:
    """Use `threads` threads (0: one per core available to this process) for torch's intra-op pool and
    for the LAC feature analyser, and return the network's share. `overlapped` is for batch prediction,
    whose feature stage runs beside the network (`batch.predict_files`): the two then split the
    threads, the network getting half (rounded up) and LAC the rest, at least one each."""
    threads = available_cores() if threads <= 0 else threads
    network = (threads + 1) // 2 if overlapped else threads
    torch.set_num_threads(network)
    set_lac_threads(max(1, threads - network) if overlapped else threads)
    return network


def set_batch_threads(model_dir: str | Path, threads: int = 0, overlap: bool = True) -> int:
    """`set_threads` for batch prediction (`batch.predict_files`) with the model in `model_dir`: the
    threads are split when the stages overlap and the model has a native feature channel (LAC) for the
    worker thread to run; otherwise the network gets them all. Returns the network's share."""
    analyses = Featurizer.from_dict(read_model_settings(model_dir).get("features", {})).analyses
    return set_threads(threads, overlapped=overlap and any(c in NATIVE_CHANNELS for c in analyses))


def predict_documents(predictor: Predictor, documents: Sequence[Document]) -> dict[str, PredictedDocument]:
    """The predictor's entities in each document, as the scoring functions take them."""
    entities = predictor.predict([d.text for d in documents])
    return {
        doc.doc_id: PredictedDocument(
            doc.doc_id, doc.text, tuple(e.as_span() for e in found), tuple(e.score for e in found)
        )
        for doc, found in zip(documents, entities)
    }
