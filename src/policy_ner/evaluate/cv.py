"""k-fold cross-validation by document, for the configured model and the baselines alike.

Every system is trained on the same k-1 folds and predicts the held-out fold, so each document is
predicted exactly once by each system. Scores are reported two ways: per fold (mean ± sample
standard deviation over the k folds, which shows how much a figure moves with the documents it is
measured on) and pooled (all out-of-fold predictions scored together, as one evaluation).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import markdown
from ..config import Config
from ..labelstudio.exports import load_documents, resolve_annotation_files
from ..scoring import EvaluationResult, PredictedDocument, evaluate
from ..types import Document
from .baselines import Tagger, make_baseline
from .metrics import match_documents, partial_match_scores

STRICT = "strict"
OVERLAP = "type"
"""SemEval-2013 `type` schema: a prediction that overlaps a gold entity of the same label counts."""
METRICS = ("precision", "recall", "f1")
MODEL = "model"


@dataclass(frozen=True)
class Fold:
    index: int
    train: list[Document]
    test: list[Document]


def assign_folds(documents: Sequence[Document], k: int, seed: int = 13) -> list[Fold]:
    """Deterministic folds of whole documents, balanced by size.

    Documents are taken largest first (ties by a salted hash of the doc id) and each goes to the
    fold with the fewest characters so far, so one very long document cannot make a fold several
    times larger than another. The result depends on the doc ids and texts only, not their order.
    """
    if not 2 <= k <= len(documents):
        raise ValueError(f"--folds must be between 2 and the number of documents ({len(documents)}), got {k}")

    def salted(doc: Document) -> str:
        return hashlib.sha256(f"{seed}:{doc.doc_id}".encode()).hexdigest()

    members: list[list[Document]] = [[] for _ in range(k)]
    sizes = [0] * k
    for doc in sorted(documents, key=lambda d: (-len(d.text), salted(d))):
        target = min(range(k), key=lambda i: (sizes[i], i))
        members[target].append(doc)
        sizes[target] += len(doc.text)
    order = {doc.doc_id: i for i, doc in enumerate(documents)}
    folds = []
    for index, test in enumerate(members):
        test_ids = {d.doc_id for d in test}
        folds.append(Fold(index, [d for d in documents if d.doc_id not in test_ids],
                          sorted(test, key=lambda d: order[d.doc_id])))
    return folds


@dataclass(frozen=True)
class FoldScores:
    system: str
    fold: int
    strict: EvaluationResult
    overlap: dict[str, dict[str, float]]
    """Per label and "micro": precision, recall and F1 under the overlap (SemEval `type`) schema."""
    seconds: float


@dataclass
class CrossValidation:
    labels: list[str]
    folds: list[Fold]
    fold_scores: list[FoldScores] = field(default_factory=list)
    predictions: dict[str, dict[str, PredictedDocument]] = field(default_factory=dict)
    """Out-of-fold predictions: system -> doc id -> prediction."""

    @property
    def systems(self) -> list[str]:
        return list(dict.fromkeys(s.system for s in self.fold_scores))

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """system -> row (each label, "micro") -> metric -> {"mean", "std", "pooled"}.

        Metrics are strict precision/recall/F1 and overlap F1 (`overlap_f1`)."""
        out = {}
        for system in self.systems:
            runs = [s for s in self.fold_scores if s.system == system]
            gold = [d for fold in self.folds for d in fold.test]
            pooled_strict = evaluate(gold, self.predictions[system], self.labels)
            pooled_overlap = overlap_scores(gold, self.predictions[system], self.labels)
            rows = {}
            for row in [*self.labels, "micro"]:
                values = {}
                for metric in METRICS:
                    per_fold = [getattr(_strict_row(s.strict, row), metric) for s in runs]
                    values[metric] = _spread(per_fold, getattr(_strict_row(pooled_strict, row), metric))
                values["overlap_f1"] = _spread([s.overlap[row]["f1"] for s in runs], pooled_overlap[row]["f1"])
                rows[row] = values
            out[system] = rows
        return out

    def to_dict(self) -> dict:
        return {
            "labels": self.labels,
            "folds": [{"index": f.index, "test_documents": [d.doc_id for d in f.test],
                       "test_characters": sum(len(d.text) for d in f.test)} for f in self.folds],
            "per_fold": [{"system": s.system, "fold": s.fold, "seconds": s.seconds,
                          "strict": s.strict.to_dict(), "overlap": s.overlap} for s in self.fold_scores],
            "summary": self.summary(),
        }


def _strict_row(result: EvaluationResult, row: str):
    return result.micro if row == "micro" else result.per_label[row]


def _spread(per_fold: Sequence[float], pooled: float) -> dict[str, float]:
    values = np.asarray(per_fold, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": round(float(values.mean()), 4), "std": round(std, 4), "pooled": round(float(pooled), 4)}


def overlap_scores(gold: Sequence[Document], predicted: dict[str, PredictedDocument],
                   labels: Sequence[str]) -> dict[str, dict[str, float]]:
    matches = match_documents(gold, [predicted[d.doc_id] for d in gold])
    by_row = partial_match_scores(matches, labels)[OVERLAP]
    return {("micro" if key == "overall" else key): {"precision": s.precision, "recall": s.recall, "f1": s.f1}
            for key, s in by_row.items()}


FitPredict = Callable[[Sequence[Document], Sequence[Document]], dict[str, PredictedDocument]]
"""(train documents, test documents) -> predictions for the test documents."""


def tagger_system(make: Callable[[], Tagger]) -> FitPredict:
    def run(train: Sequence[Document], test: Sequence[Document]) -> dict[str, PredictedDocument]:
        found = make().fit(train).predict([d.text for d in test])
        return {d.doc_id: PredictedDocument(d.doc_id, d.text, tuple(e.as_span() for e in entities),
                                            tuple(e.score for e in entities))
                for d, entities in zip(test, found)}
    return run


def model_system(config: Config, vocab_texts: Sequence[str], log=print) -> FitPredict:
    from ..model.predictor import predict_documents  # torch loads only when a model is trained
    from ..train.run import fit_model

    def run(train: Sequence[Document], test: Sequence[Document]) -> dict[str, PredictedDocument]:
        fitted = fit_model(config, train, vocab_texts, log=log)
        return predict_documents(fitted.predictor(config), test)
    return run


def cross_validate(documents: Sequence[Document], labels: Sequence[str], systems: dict[str, FitPredict],
                   k: int = 5, seed: int = 13, log=print) -> CrossValidation:
    folds = assign_folds(documents, k, seed)
    cv = CrossValidation(list(labels), folds)
    for name, run in systems.items():
        cv.predictions[name] = {}
        for fold in folds:
            log(f"[{name}] fold {fold.index + 1}/{k}: {len(fold.train)} train, {len(fold.test)} test documents")
            started = time.perf_counter()
            predicted = run(fold.train, fold.test)
            seconds = round(time.perf_counter() - started, 1)
            cv.predictions[name].update(predicted)
            strict = evaluate(fold.test, predicted, labels)
            cv.fold_scores.append(FoldScores(name, fold.index, strict, overlap_scores(fold.test, predicted, labels),
                                             seconds))
            log(f"[{name}] fold {fold.index + 1}/{k}: strict micro F1 {strict.micro.f1:.3f} ({seconds}s)")
    return cv


def systems_for(config: Config, vocab_texts: Sequence[str], baselines: Sequence[str], include_model: bool = True,
                log=print) -> dict[str, FitPredict]:
    systems: dict[str, FitPredict] = {}
    if include_model:
        systems[MODEL] = model_system(config, vocab_texts, log=log)
    for name in baselines:
        make_baseline(name)  # fails early on an unknown name
        systems[name] = tagger_system(lambda name=name: make_baseline(name))
    return systems


def cross_validate_config(config: Config, root: Path, *, k: int = 5, seed: int = 13,
                          baselines: Sequence[str] = ("wordlist", "crf", "lac"), include_model: bool = True,
                          log=print) -> CrossValidation:
    """`cross_validate` of the config's model and `baselines` on the config's annotations."""
    documents = load_documents(resolve_annotation_files(config.data.annotations, root), config.labels)
    vocab_texts: list[str] = []
    if include_model:  # torch loads only when a model is trained
        from ..model.predictor import set_threads
        from ..train.run import vocabulary_texts

        set_threads(config.train.threads)
        vocab_texts = vocabulary_texts(config, documents, root)[0]
    systems = systems_for(config, vocab_texts, baselines, include_model=include_model, log=log)
    return cross_validate(documents, config.labels, systems, k=k, seed=seed, log=log)


def cv_markdown(cv: CrossValidation, title: str, command: str, names: dict[str, str] | None = None) -> str:
    """The results table: strict F1 per label and micro as mean ± std over folds, pooled strict F1,
    and overlap F1."""
    names = names or {}
    summary = cv.summary()
    rows = [*cv.labels, "micro"]
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             f"{len(cv.folds)} folds by document ({sum(len(f.test) for f in cv.folds)} documents, "
             f"{sum(len(d.text) for f in cv.folds for d in f.test):,} characters). Cells: strict F1 mean ± std "
             "over folds; the pooled figure scores all out-of-fold predictions at once.", "",
             markdown.table(["system", *rows, "pooled micro", "overlap micro F1"], [
                 [names.get(system, system),
                  *(f"{by_row[r]['f1']['mean']:.3f} ± {by_row[r]['f1']['std']:.3f}" for r in rows),
                  f"{by_row['micro']['f1']['pooled']:.3f}",
                  f"{by_row['micro']['overlap_f1']['mean']:.3f} ± {by_row['micro']['overlap_f1']['std']:.3f}"]
                 for system, by_row in summary.items()], "l" + "r" * (len(rows) + 2)),
             "", "Strict precision / recall (mean over folds):", "",
             markdown.table(["system", *rows], [
                 [names.get(system, system),
                  *(f"{by_row[r]['precision']['mean']:.3f} / {by_row[r]['recall']['mean']:.3f}" for r in rows)]
                 for system, by_row in summary.items()], "l" + "r" * len(rows))]
    lines += ["", "Folds (test documents):", ""]
    lines += [f"- fold {f.index + 1}: " + ", ".join(d.doc_id for d in f.test) for f in cv.folds]
    seconds = {s: sum(x.seconds for x in cv.fold_scores if x.system == s) for s in cv.systems}
    lines += ["", "Time (train + predict, all folds): " + ", ".join(
        f"{names.get(s, s)} {t:.0f} s" for s, t in seconds.items()), ""]
    return "\n".join(lines)


def write_cross_validation(cv: CrossValidation, output: Path, title: str, command: str,
                           names: dict[str, str] | None = None) -> list[Path]:
    """cv.json, cv.md and one out-of-fold prediction file per system, written atomically."""
    import json

    from ..files import atomic_write_json, atomic_write_text
    from ..predict.outputs import prediction_record
    from ..types import Entity

    output = Path(output)
    paths = [atomic_write_json(output / "cv.json", {"title": title, "command": command, **cv.to_dict()}),
             atomic_write_text(output / "cv.md", cv_markdown(cv, title, command, names))]
    for system, predicted in cv.predictions.items():
        lines = []
        for doc_id, pred in predicted.items():
            scores = pred.scores or (1.0,) * len(pred.spans)
            entities = [Entity(s.label, s.start, s.end, pred.text[s.start:s.end], score)
                        for s, score in zip(pred.spans, scores)]
            lines.append(json.dumps(prediction_record(doc_id, pred.text, entities), ensure_ascii=False) + "\n")
        paths.append(atomic_write_text(output / "predictions" / f"{system}.jsonl", "".join(lines)))
    return paths
