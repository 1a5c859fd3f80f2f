"""Everything an evaluation report shows, computed once: seqeval's strict figures (`scoring`) and the
rest from `metrics` (partial-match schemas, bootstrap intervals, error taxonomy and list, confusion,
the score-threshold curve)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from ..scoring import EvaluationInputError, EvaluationResult, PredictedDocument, align, check_labels, evaluate
from ..types import Document
from . import metrics


@dataclass(frozen=True)
class EvaluationReport:
    """Everything an evaluation report shows; `to_dict()` is `report.json`.

    `result` holds the seqeval figures (strict IOB2 per label, micro, macro, default mode); the rest
    comes from `metrics`: SemEval-2013 partial-match scores, bootstrap intervals over documents,
    error taxonomy, confusion, the error list and the score-threshold curve.
    """

    result: EvaluationResult
    labels: list[str]
    partial: dict
    intervals: dict
    bootstrap: dict
    error_counts: dict
    confusion: dict
    errors: dict
    threshold_curve: list | None
    context: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        result = data.pop("result")
        return {"context": data.pop("context"), **result, **data}


def build_report(
    gold: Sequence[Document],
    predicted: Mapping[str, PredictedDocument],
    labels: Sequence[str],
    *,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    context: Mapping | None = None,
) -> EvaluationReport:
    """Score `predicted` against `gold` every way the report shows. Refuses (EvaluationInputError)
    when there is no gold document, a gold document has no prediction, texts differ, or a prediction
    carries a label outside `labels`."""
    if not gold:
        raise EvaluationInputError("no gold documents to score")
    aligned = align(gold, predicted)
    check_labels(aligned, labels)
    result = evaluate(gold, predicted, labels)
    matches = metrics.match_documents(gold, aligned)
    counts = metrics.document_counts(gold, matches, labels)
    return EvaluationReport(
        result=result,
        labels=list(labels),
        partial=metrics.partial_match_scores(matches, labels),
        intervals=metrics.bootstrap_intervals(counts, labels, samples, seed, confidence),
        bootstrap={
            "samples": samples,
            "seed": seed,
            "confidence": confidence,
            "unit": "document",
            "note": metrics.bootstrap_note(len(gold)),
        },
        error_counts=metrics.error_counts(matches, labels),
        confusion=metrics.confusion(matches, labels),
        errors=metrics.error_list(matches, {doc.doc_id: doc.text for doc in gold}, labels),
        threshold_curve=metrics.threshold_curve(matches, int(counts[..., 2].sum())),
        context=dict(context or {}),
    )


def describe_unscored(unscored: Mapping[str, Sequence[str]], shown: int = 10) -> str:
    """`name: N prediction(s) without a gold document, not scored (a, b, ...)` per system that has any."""
    parts = []
    for name, doc_ids in unscored.items():
        listed = ", ".join(doc_ids[:shown]) + (", …" if len(doc_ids) > shown else "")
        parts.append(f"{name}: {len(doc_ids)} prediction(s) without a gold document, not scored ({listed})")
    return "; ".join(parts)
