"""Pure scoring functions behind the evaluation reports: entity matching, SemEval-2013 partial-match
figures, error taxonomy and confusion, error lists with context, score-threshold curves, and
bootstrap confidence intervals over documents (plain and paired).

Matching. Within one document, gold entities and predicted entities are paired one to one: first
every pair with identical offsets, then overlapping pairs, largest overlap first (ties: earlier
gold, then earlier prediction). A gold entity left unpaired is *missed*; a prediction left unpaired
is *spurious*, even when it overlaps a gold entity that another prediction already took. A pair is

- `correct`: same offsets, same label (the only case seqeval strict mode counts as a true positive);
- `label`: same offsets, other label (a label error);
- `boundary`: overlapping offsets, same label (a boundary error);
- `label_boundary`: overlapping offsets, other label (both).

SemEval-2013 (Segura-Bedmar et al.; the `nervaluate` convention) scores these under four schemas:

| pair | strict | exact | partial | type |
|---|---|---|---|---|
| correct | COR | COR | COR | COR |
| label | INC | COR | COR | INC |
| boundary | INC | INC | PAR | COR |
| label_boundary | INC | INC | PAR | INC |
| missed | MIS | MIS | MIS | MIS |
| spurious | SPU | SPU | SPU | SPU |

with POS = COR + INC + PAR + MIS (gold entities), ACT = COR + INC + PAR + SPU (predictions),
precision = (COR + ½ PAR) / ACT, recall = (COR + ½ PAR) / POS (PAR only occurs in `partial`).
Per label, a pair counts under its gold label and a spurious prediction under its predicted label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..types import Document, Span

CATEGORIES = ("correct", "label", "boundary", "label_boundary", "missed", "spurious")
SCHEMAS = ("strict", "exact", "partial", "type")
OUTCOMES = ("COR", "INC", "PAR", "MIS", "SPU")
SCHEMA_OUTCOME = {
    "strict": {"correct": "COR", "label": "INC", "boundary": "INC", "label_boundary": "INC"},
    "exact": {"correct": "COR", "label": "COR", "boundary": "INC", "label_boundary": "INC"},
    "partial": {"correct": "COR", "label": "COR", "boundary": "PAR", "label_boundary": "PAR"},
    "type": {"correct": "COR", "label": "INC", "boundary": "COR", "label_boundary": "INC"},
}
NONE = "(none)"
"""Row/column name in the confusion table for 'no entity' (missed or spurious)."""
CONTEXT_CHARS = 20


@dataclass(frozen=True)
class Match:
    """One outcome of matching a document: a pair, a missed gold entity or a spurious prediction."""

    doc_id: str
    category: str
    gold: Span | None
    predicted: Span | None
    score: float | None = None
    """The predicted entity's score, when there is a prediction and the predictions carry scores."""


def _overlap(a: Span, b: Span) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


def match_document(
    doc_id: str, gold: Sequence[Span], predicted: Sequence[Span], scores: Sequence[float] | None = None
) -> list[Match]:
    """Pair the gold and predicted entities of one document (see the module docstring)."""
    score_of = dict(zip(predicted, scores)) if scores is not None else {}
    free_gold, free_pred = set(gold), set(predicted)
    pairs: list[tuple[Span, Span]] = []
    by_offsets = {(p.start, p.end): p for p in predicted}
    for g in gold:
        p = by_offsets.get((g.start, g.end))
        if p is not None and p in free_pred:
            pairs.append((g, p))
            free_gold.discard(g)
            free_pred.discard(p)
    candidates = sorted(
        ((g, p) for g in free_gold for p in free_pred if _overlap(g, p) > 0),
        key=lambda gp: (-_overlap(*gp), gp[0].start, gp[0].end, gp[1].start, gp[1].end),
    )
    for g, p in candidates:
        if g in free_gold and p in free_pred:
            pairs.append((g, p))
            free_gold.discard(g)
            free_pred.discard(p)
    matches = []
    for g, p in pairs:
        same_offsets = (g.start, g.end) == (p.start, p.end)
        same_label = g.label == p.label
        category = (
            ("correct" if same_label else "label") if same_offsets else ("boundary" if same_label else "label_boundary")
        )
        matches.append(Match(doc_id, category, g, p, score_of.get(p)))
    matches += [Match(doc_id, "missed", g, None) for g in free_gold]
    matches += [Match(doc_id, "spurious", None, p, score_of.get(p)) for p in free_pred]
    return sorted(matches, key=_match_position)


def _first_span(m: Match) -> Span:
    """The gold entity of a match, or its prediction when it has none (a spurious entity)."""
    first = m.gold or m.predicted
    if first is None:
        raise ValueError(f"a match in {m.doc_id} has neither a gold nor a predicted entity")
    return first


def _match_position(m: Match) -> tuple:
    first = _first_span(m)
    return (first.start, first.end, m.gold is None)


def match_documents(gold: Sequence[Document], aligned: Sequence) -> list[Match]:
    """Matches of every document; `aligned[i]` is the `PredictedDocument` (or any object with
    `spans` and optional `scores`) for `gold[i]`."""
    return [
        m
        for doc, pred in zip(gold, aligned)
        for m in match_document(doc.doc_id, doc.spans, pred.spans, getattr(pred, "scores", None))
    ]


def match_label(m: Match) -> str:
    """The label a match counts under: the gold label, or the predicted one for a spurious entity."""
    return _first_span(m).label


# --- counts and scores ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float


def prf(true_positive: float, predicted: float, gold: float) -> PRF:
    """Precision, recall and F1; 0 where a denominator is 0 (seqeval's zero_division=0)."""
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(round(precision, 4), round(recall, 4), round(f1, 4))


@dataclass(frozen=True)
class SchemaScores:
    """SemEval-2013 counts and scores under one schema."""

    correct: int
    incorrect: int
    partial: int
    missed: int
    spurious: int
    possible: int
    actual: int
    precision: float
    recall: float
    f1: float


def schema_scores(matches: Sequence[Match], schema: str) -> SchemaScores:
    outcomes = Counter(
        SCHEMA_OUTCOME[schema].get(m.category, "MIS" if m.category == "missed" else "SPU") for m in matches
    )
    cor, inc, par, mis, spu = (outcomes[o] for o in OUTCOMES)
    possible, actual = cor + inc + par + mis, cor + inc + par + spu
    scores = prf(cor + 0.5 * par, actual, possible)
    return SchemaScores(cor, inc, par, mis, spu, possible, actual, scores.precision, scores.recall, scores.f1)


def partial_match_scores(matches: Sequence[Match], labels: Sequence[str]) -> dict[str, dict[str, SchemaScores]]:
    """{schema: {"overall" | label: SchemaScores}} for the four SemEval-2013 schemas."""
    return {
        schema: {
            "overall": schema_scores(matches, schema),
            **{label: schema_scores([m for m in matches if match_label(m) == label], schema) for label in labels},
        }
        for schema in SCHEMAS
    }


def error_counts(matches: Sequence[Match], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """{label: {category: count}}: boundary errors apart from label errors, per label (see
    `match_label`), plus a `total` row."""
    table = {label: dict.fromkeys(CATEGORIES, 0) for label in labels}
    table["total"] = dict.fromkeys(CATEGORIES, 0)
    for m in matches:
        table[match_label(m)][m.category] += 1
        table["total"][m.category] += 1
    return table


def confusion(matches: Sequence[Match], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """{gold label or (none): {predicted label or (none): count}} over all matches: a pair counts at
    (gold label, predicted label) whether its offsets agree or overlap; a missed entity at
    (gold label, (none)); a spurious one at ((none), predicted label)."""
    names = list(labels) + [NONE]
    table = {row: dict.fromkeys(names, 0) for row in names}
    for m in matches:
        table[m.gold.label if m.gold else NONE][m.predicted.label if m.predicted else NONE] += 1
    return table


@dataclass(frozen=True)
class ErrorItem:
    """A strict false positive or false negative, with the text around it."""

    doc_id: str
    kind: str
    """`false_negative` (a gold entity not predicted exactly) or `false_positive`."""
    category: str
    label: str
    start: int
    end: int
    text: str
    left: str
    right: str
    other: str = ""
    """The entity it was paired with, as `LABEL 'text' start:end` (empty for missed/spurious)."""
    score: float | None = None


def _describe(span: Span, text: str) -> str:
    return f"{span.label} {span.text_in(text)!r} {span.start}:{span.end}"


def error_list(
    matches: Sequence[Match], texts: Mapping[str, str], labels: Sequence[str], context: int = CONTEXT_CHARS
) -> dict[str, list[ErrorItem]]:
    """Strict errors grouped by the erroneous entity's own label, in document order: every gold
    entity not predicted exactly is a false negative, every prediction not exactly gold a false
    positive (so a boundary or label error appears as one of each)."""
    groups: dict[str, list[ErrorItem]] = {label: [] for label in labels}
    for m in matches:
        if m.category == "correct":
            continue
        text = texts[m.doc_id]
        for kind, span, other in (("false_negative", m.gold, m.predicted), ("false_positive", m.predicted, m.gold)):
            if span is None:
                continue
            groups.setdefault(span.label, []).append(
                ErrorItem(
                    m.doc_id,
                    kind,
                    m.category,
                    span.label,
                    span.start,
                    span.end,
                    span.text_in(text),
                    text[max(0, span.start - context) : span.start],
                    text[span.end : span.end + context],
                    _describe(other, text) if other else "",
                    m.score if kind == "false_positive" else None,
                )
            )
    return groups


# --- per-document counts, thresholds, bootstrap --------------------------------------------------


def document_counts(gold: Sequence[Document], matches: Sequence[Match], labels: Sequence[str]) -> np.ndarray:
    """Array (documents, labels, 3) of strict (true positives, predicted, gold) per document and label."""
    index = {doc.doc_id: i for i, doc in enumerate(gold)}
    column = {label: j for j, label in enumerate(labels)}
    counts = np.zeros((len(gold), len(labels), 3), dtype=np.int64)
    for m in matches:
        row = index[m.doc_id]
        if m.predicted is not None:
            counts[row, column[m.predicted.label], 1] += 1
        if m.gold is not None:
            counts[row, column[m.gold.label], 2] += 1
            if m.category == "correct":
                counts[row, column[m.gold.label], 0] += 1
    return counts


def scores_from_totals(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Strict P/R/F1 from summed counts `totals` (..., labels, 3): arrays (..., labels) per label, and
    (...) for `micro_*` and `macro_*` (macro: mean over the labels present in gold or predictions)."""
    totals = np.asarray(totals, dtype=float)
    tp, pred, gold = totals[..., 0], totals[..., 1], totals[..., 2]

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)

    def f1(p, r):
        return ratio(2 * p * r, p + r)

    precision, recall = ratio(tp, pred), ratio(tp, gold)
    f = f1(precision, recall)
    micro_p, micro_r = ratio(tp.sum(-1), pred.sum(-1)), ratio(tp.sum(-1), gold.sum(-1))
    present = (pred + gold) > 0
    n_present = present.sum(-1)

    def macro(values):
        return ratio((values * present).sum(-1), n_present)

    return {
        "precision": precision,
        "recall": recall,
        "f1": f,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": f1(micro_p, micro_r),
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f),
    }


THRESHOLDS: tuple[float, ...] = tuple(round(t, 2) for t in np.linspace(0, 1, 21))
"""The score thresholds of `threshold_curve`: 0, 0.05, ..., 1."""


def threshold_curve(
    matches: Sequence[Match],
    gold_total: int,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[dict[str, float]] | None:
    """Micro strict precision/recall/F1 keeping only predictions whose score is >= each threshold;
    None when the predictions carry no scores."""
    predictions = [m for m in matches if m.predicted is not None]
    if any(m.score is None for m in predictions):
        return None
    scores = np.array([m.score for m in predictions], dtype=float)
    correct = np.array([m.category == "correct" for m in predictions], dtype=bool)
    curve = []
    for t in thresholds:
        kept = scores >= t
        s = prf(int((kept & correct).sum()), int(kept.sum()), gold_total)
        curve.append(
            {
                "threshold": float(t),
                "predicted": int(kept.sum()),
                "true_positives": int((kept & correct).sum()),
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
            }
        )
    return curve


FEW_DOCUMENTS = 10


def bootstrap_note(n_documents: int) -> str:
    """A warning for reports whose intervals rest on very few documents ('' when there are enough)."""
    if n_documents >= FEW_DOCUMENTS:
        return ""
    return (
        f"only {n_documents} document(s): intervals from resampling so few documents understate the "
        f"uncertainty (with one document they have no width at all)"
    )


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def resample_weights(n_documents: int, samples: int, seed: int) -> np.ndarray:
    """(samples, documents) array: how often each document is drawn in each bootstrap sample
    (documents drawn with replacement, `n_documents` per sample, from numpy's seeded PCG64)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_documents, size=(samples, n_documents))
    weights = np.zeros((samples, n_documents), dtype=np.int64)
    np.add.at(weights, (np.arange(samples)[:, None], draws), 1)
    return weights


def _percentile_interval(values: np.ndarray, confidence: float) -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(round(float(low), 4), round(float(high), 4))


METRIC_KEYS = ("precision", "recall", "f1")


def bootstrap_intervals(
    counts: np.ndarray, labels: Sequence[str], samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict[str, dict[str, Interval]]:
    """Percentile bootstrap intervals over documents for strict P/R/F1:
    {label | "micro avg" | "macro avg": {"precision" | "recall" | "f1": Interval}}."""
    weights = resample_weights(counts.shape[0], samples, seed)
    totals = np.tensordot(weights, counts, axes=(1, 0))  # (samples, labels, 3)
    scores = scores_from_totals(totals)
    out = {
        label: {k: _percentile_interval(scores[k][:, j], confidence) for k in METRIC_KEYS}
        for j, label in enumerate(labels)
    }
    for name, prefix in (("micro avg", "micro_"), ("macro avg", "macro_")):
        out[name] = {k: _percentile_interval(scores[prefix + k], confidence) for k in METRIC_KEYS}
    return out


@dataclass(frozen=True)
class Delta:
    """Score of B minus score of A on the same documents, with a paired bootstrap interval."""

    a: float
    b: float
    delta: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    labels: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, Delta]]:
    """{label | "micro avg" | "macro avg": {metric: Delta}}: both systems are scored on the same
    resampled documents in every bootstrap sample, and the interval is that of the differences."""
    if counts_a.shape != counts_b.shape:
        raise ValueError("paired bootstrap needs counts over the same documents and labels")
    weights = resample_weights(counts_a.shape[0], samples, seed)
    full_a, full_b = scores_from_totals(counts_a.sum(0)), scores_from_totals(counts_b.sum(0))
    boot_a = scores_from_totals(np.tensordot(weights, counts_a, axes=(1, 0)))
    boot_b = scores_from_totals(np.tensordot(weights, counts_b, axes=(1, 0)))

    def delta(key: str, column: int | None) -> Delta:
        pick = (lambda x: x[..., column]) if column is not None else (lambda x: x)
        a, b = float(pick(full_a[key])), float(pick(full_b[key]))
        interval = _percentile_interval(pick(boot_b[key]) - pick(boot_a[key]), confidence)
        return Delta(round(a, 4), round(b, 4), round(b - a, 4), interval.low, interval.high)

    out = {label: {k: delta(k, j) for k in METRIC_KEYS} for j, label in enumerate(labels)}
    for name, prefix in (("micro avg", "micro_"), ("macro avg", "macro_")):
        out[name] = {k: delta(prefix + k, None) for k in METRIC_KEYS}
    return out
