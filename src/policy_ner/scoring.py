"""Entity-level scores of predictions against gold documents, with seqeval (strict mode, IOB2).

Gold and predictions are compared as character IOB2 sequences per document. Texts must match
exactly for every doc id, and every gold document must have a prediction: a report never scores
against different texts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import markdown
from .tags import char_tags
from .types import Document, Span


class EvaluationInputError(ValueError):
    """Predictions do not line up with the gold documents."""


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int = 0


@dataclass(frozen=True)
class EvaluationResult:
    per_label: dict[str, Scores]
    micro: Scores
    macro: Scores
    default_mode_micro_f1: float
    """seqeval's lenient (conlleval-style) micro F1; a diagnostic next to the strict figures."""
    documents: int
    doc_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PredictedDocument:
    doc_id: str
    text: str
    spans: tuple[Span, ...]
    scores: tuple[float, ...] | None = None
    """Entity scores parallel to `spans` (None when the predictions carry none)."""


def predicted_documents(records: Sequence[Mapping], source: str = "predictions") -> dict[str, PredictedDocument]:
    """Prediction records (`{"doc_id", "text", "entities": [{"label", "start", "end", "score"?}]}`,
    as `inference.read_predictions` returns them) -> `PredictedDocument`s by doc id.

    A doc id given twice, or entities that overlap, are errors naming `source` and the doc id.
    Scores are kept only when every entity of the file has one.
    """
    documents: dict[str, PredictedDocument] = {}
    with_scores = all("score" in e for r in records for e in r.get("entities", []))
    for record in records:
        doc_id = record["doc_id"]
        if doc_id in documents:
            raise EvaluationInputError(f"{source}: doc {doc_id} appears more than once")
        entities = sorted(record.get("entities", []), key=lambda e: (e["start"], e["end"]))
        for before, after in zip(entities, entities[1:]):
            if after["start"] < before["end"]:
                raise EvaluationInputError(
                    f"{source}: doc {doc_id}: entities {before['start']}:{before['end']} and "
                    f"{after['start']}:{after['end']} overlap"
                )
        documents[doc_id] = PredictedDocument(
            doc_id,
            record["text"],
            tuple(Span(e["start"], e["end"], e["label"]) for e in entities),
            tuple(float(e["score"]) for e in entities) if with_scores else None,
        )
    return documents


def align(gold: Sequence[Document], predicted: Mapping[str, PredictedDocument]) -> list[PredictedDocument]:
    """The prediction for each gold document, in gold order; mismatches are errors."""
    missing = [doc.doc_id for doc in gold if doc.doc_id not in predicted]
    if missing:
        raise EvaluationInputError(f"no prediction for {len(missing)} gold document(s): {', '.join(missing)}")
    aligned = []
    for doc in gold:
        pred = predicted[doc.doc_id]
        if pred.text != doc.text:
            offset = next(
                (i for i, (a, b) in enumerate(zip(doc.text, pred.text)) if a != b), min(len(doc.text), len(pred.text))
            )
            raise EvaluationInputError(
                f"doc {doc.doc_id}: predicted text differs from the gold text at character {offset} "
                f"(gold {len(doc.text)} chars {doc.text[offset : offset + 20]!r}, "
                f"predicted {len(pred.text)} chars {pred.text[offset : offset + 20]!r})"
            )
        aligned.append(pred)
    return aligned


def evaluate(
    gold: Sequence[Document], predicted: Mapping[str, PredictedDocument], labels: Sequence[str]
) -> EvaluationResult:
    from seqeval.metrics import classification_report, f1_score  # imports scikit-learn: only when scoring
    from seqeval.scheme import IOB2

    aligned = align(gold, predicted)
    y_true = [char_tags(doc.text, doc.spans) for doc in gold]
    y_pred = [char_tags(pred.text, pred.spans) for pred in aligned]
    with warnings.catch_warnings():  # seqeval averages empty arrays when nothing is found at all
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
        lenient_f1 = f1_score(y_true, y_pred, average="micro", zero_division=0)
    predicted_counts = {label: sum(s.label == label for p in aligned for s in p.spans) for label in labels}

    def scores(key: str, predicted_count: int) -> Scores:
        row = report.get(key, {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
        return Scores(
            round(float(row["precision"]), 4),
            round(float(row["recall"]), 4),
            round(float(row["f1-score"]), 4),
            int(row["support"]),
            predicted_count,
        )

    total_predicted = sum(predicted_counts.values())
    return EvaluationResult(
        per_label={label: scores(label, predicted_counts[label]) for label in labels},
        micro=scores("micro avg", total_predicted),
        macro=_macro([scores(label, predicted_counts[label]) for label in labels]),
        default_mode_micro_f1=round(float(lenient_f1), 4),
        documents=len(gold),
        doc_ids=[doc.doc_id for doc in gold],
    )


def _macro(rows: list[Scores]) -> Scores:
    """Unweighted mean over the labels that occur in gold or predictions (as seqeval does)."""
    seen = [r for r in rows if r.support or r.predicted]
    n = len(seen) or 1
    return Scores(
        round(sum(r.precision for r in seen) / n, 4),
        round(sum(r.recall for r in seen) / n, 4),
        round(sum(r.f1 for r in seen) / n, 4),
        sum(r.support for r in seen),
        sum(r.predicted for r in seen),
    )


def check_labels(aligned: Sequence[PredictedDocument], labels: Sequence[str]) -> None:
    known = set(labels)
    for pred in aligned:
        for span in pred.spans:
            if span.label not in known:
                raise EvaluationInputError(
                    f"doc {pred.doc_id}: predicted label {span.label!r} at "
                    f"{span.start}:{span.end} is not one of {', '.join(labels)}"
                )


def scores_table(result: EvaluationResult | dict[str, Any]) -> str:
    """Markdown table: one row per label, then micro and macro averages."""
    data = result.to_dict() if isinstance(result, EvaluationResult) else result
    rows = list(data["per_label"].items()) + [("micro avg", data["micro"]), ("macro avg", data["macro"])]
    cells = [
        (name, *(f"{s[key]:.3f}" for key in ("precision", "recall", "f1")), s["support"], s["predicted"])
        for name, s in ((name, asdict(s) if isinstance(s, Scores) else s) for name, s in rows)
    ]
    return markdown.table(["label", "precision", "recall", "F1", "gold", "predicted"], cells, "lrrrrr")
