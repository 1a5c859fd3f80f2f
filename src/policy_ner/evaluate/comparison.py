"""Model-version comparison: two or more systems (model directories or saved prediction files)
scored on the same gold documents, with per-label deltas against the first (the baseline) and
paired bootstrap intervals, and the documents and entities on which the systems disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import DEFAULT_EDGE_PUNCTUATION
from ..files import sha256_file
from ..labelstudio.exports import load_documents
from ..model.registry import MODEL_CARD_FILE, MODEL_SETTINGS_FILE, check_version, read_model_card, read_model_settings
from ..scoring import EvaluationInputError, PredictedDocument, align, check_labels, evaluate, predicted_documents
from ..types import Document, Span
from . import metrics
from .evaluation import EvaluationReport, build_report


@dataclass(frozen=True)
class SystemSource:
    """Where a system's predictions come from: a model directory or a prediction JSONL file."""

    name: str
    path: str
    kind: str
    """`model` or `predictions`."""
    labels: list[str] | None = None
    """The model's label set (None for a prediction file)."""
    card: dict | None = None
    edge_punctuation: str | None = None
    """The span-edge rule the model was trained under (`data.edge_punctuation`; None: the default)."""


def open_source(path: str | Path) -> SystemSource:
    """Describe `path` without loading any weights; errors name the path."""
    path = Path(path)
    if path.is_dir():
        settings = read_model_settings(path)
        card = read_model_card(path) if (path / MODEL_CARD_FILE).is_file() else None
        version = check_version(settings.get("version", path.name), f"{path / MODEL_SETTINGS_FILE}: version")
        edges = settings.get("edge_punctuation")
        return SystemSource(version, str(path), "model", list(settings["labels"]), card, edges)
    if path.is_file():
        return SystemSource(path.name.removesuffix(".jsonl"), str(path), "predictions")
    raise FileNotFoundError(f"{path}: no such model directory or prediction file")


def gold_edge_punctuation(sources: Sequence[SystemSource]) -> str:
    """The span-edge rule the gold is read under: only the characters that every model's rule forbids (the
    policy default when no model records one), so gold that one of the models was trained on is accepted."""
    rules = [s.edge_punctuation for s in sources if s.edge_punctuation is not None]
    if not rules:
        return DEFAULT_EDGE_PUNCTUATION
    return "".join(c for c in rules[0] if all(c in rule for rule in rules[1:]))


def source_predictions(source: SystemSource, gold: Sequence[Document]) -> dict[str, PredictedDocument]:
    """Run the model on the gold texts, or read the prediction file (every record, checked)."""
    if source.kind == "model":
        from ..model.predictor import Predictor, predict_documents

        return predict_documents(Predictor.from_pretrained(source.path), gold)
    from ..predict.outputs import read_predictions

    return predicted_documents(read_predictions(source.path), source.path)


def predictions_without_gold(predicted: Mapping[str, PredictedDocument], gold: Sequence[Document]) -> list[str]:
    """Doc ids a prediction file holds that no gold export has: not scored, so reported, never dropped
    silently (a split excludes gold documents on purpose; those are not listed)."""
    return sorted(set(predicted) - {doc.doc_id for doc in gold})


def unique_names(names: Sequence[str]) -> list[str]:
    """`names` with repeats made distinct (`v1`, `v1#2`), so every system has its own column."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


@dataclass(frozen=True)
class Disagreement:
    """An entity (label and offsets) that some systems predicted and others did not."""

    doc_id: str
    label: str
    start: int
    end: int
    text: str
    left: str
    right: str
    predicted_by: list[str]
    gold: bool
    """Whether exactly this entity is in the gold annotation."""


@dataclass(frozen=True)
class Comparison:
    systems: list[dict]
    labels: list[str]
    doc_ids: list[str]
    scores: dict
    """{system: {label | "micro avg" | "macro avg": {precision, recall, f1, support, predicted, intervals}}}"""
    deltas: dict
    """{system other than the baseline: {label | "micro avg" | "macro avg": {metric: Delta fields + excludes_zero}}}"""
    documents: list[dict]
    """Per document where the systems disagree: entity counts and strict F1 per system."""
    disagreements: list[Disagreement]
    default_mode_micro_f1: dict
    bootstrap: dict
    context: dict = field(default_factory=dict)

    @property
    def baseline(self) -> str:
        return self.systems[0]["name"]

    def to_dict(self) -> dict:
        return asdict(self)


def _score_rows(result, intervals: dict) -> dict:
    rows = {
        **{label: result.per_label[label] for label in result.per_label},
        "micro avg": result.micro,
        "macro avg": result.macro,
    }
    return {
        name: {**asdict(s), "intervals": {k: asdict(v) for k, v in intervals[name].items()}} for name, s in rows.items()
    }


def compare_systems(
    gold: Sequence[Document],
    systems: Mapping[str, Mapping[str, PredictedDocument]],
    labels: Sequence[str],
    *,
    sources: Sequence[SystemSource] = (),
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    context: Mapping | None = None,
    context_chars: int = metrics.CONTEXT_CHARS,
) -> Comparison:
    """Score every system on `gold` and compare each with the first. Every system must have a
    prediction for every gold document, with the gold text (EvaluationInputError naming the system
    and the doc id otherwise)."""
    if len(systems) < 2:
        raise ValueError("a comparison needs at least two systems")
    if not gold:
        raise EvaluationInputError("no gold documents to compare on")
    names = list(systems)
    aligned, counts, scores, lenient = {}, {}, {}, {}
    for name in names:
        try:
            aligned[name] = align(gold, systems[name])
            check_labels(aligned[name], labels)
        except EvaluationInputError as exc:
            raise EvaluationInputError(f"{name}: {exc}") from None
        found = metrics.match_documents(gold, aligned[name])
        counts[name] = metrics.document_counts(gold, found, labels)
        result = evaluate(gold, systems[name], labels)
        scores[name] = _score_rows(result, metrics.bootstrap_intervals(counts[name], labels, samples, seed, confidence))
        lenient[name] = result.default_mode_micro_f1
    baseline = names[0]
    deltas = {}
    for name in names[1:]:
        paired = metrics.paired_bootstrap(counts[baseline], counts[name], labels, samples, seed, confidence)
        deltas[name] = {
            row: {k: {**asdict(d), "excludes_zero": d.excludes_zero} for k, d in by_metric.items()}
            for row, by_metric in paired.items()
        }

    disagreements, documents = [], []
    for i, doc in enumerate(gold):
        predicted_by: dict[Span, list[str]] = {}
        for name in names:
            for span in aligned[name][i].spans:
                predicted_by.setdefault(span, []).append(name)
        differing = sorted(span for span, who in predicted_by.items() if len(who) < len(names))
        if not differing:
            continue
        gold_spans = set(doc.spans)
        for span in differing:
            disagreements.append(
                Disagreement(
                    doc.doc_id,
                    span.label,
                    span.start,
                    span.end,
                    span.text_in(doc.text),
                    doc.text[max(0, span.start - context_chars) : span.start],
                    doc.text[span.end : span.end + context_chars],
                    predicted_by[span],
                    span in gold_spans,
                )
            )
        row = {"doc_id": doc.doc_id, "disagreements": len(differing), "gold": len(doc.spans)}
        for name in names:
            tp, pred, gold_n = (int(x) for x in counts[name][i].sum(0))
            row[name] = {"predicted": pred, "true_positives": tp, "f1": metrics.prf(tp, pred, gold_n).f1}
        documents.append(row)

    sources = list(sources) or [SystemSource(name, "", "") for name in names]
    return Comparison(
        systems=[
            {
                "name": name,
                "path": s.path,
                "kind": s.kind,
                "version": (s.card or {}).get("version"),
                "base_model": (s.card or {}).get("base_model"),
                "created": (s.card or {}).get("created"),
            }
            for name, s in zip(names, sources)
        ],
        labels=list(labels),
        doc_ids=[doc.doc_id for doc in gold],
        scores=scores,
        deltas=deltas,
        documents=documents,
        disagreements=disagreements,
        default_mode_micro_f1=lenient,
        bootstrap={
            "samples": samples,
            "seed": seed,
            "confidence": confidence,
            "unit": "document",
            "paired": True,
            "note": metrics.bootstrap_note(len(gold)),
        },
        context=dict(context or {}),
    )


def select_documents(gold: Sequence[Document], split: str, sources: Sequence[SystemSource]) -> list[Document]:
    """`gold` for `all`; for `dev` or `train`, the documents every model directory among `sources`
    lists under that split in its model card (prediction files have no split)."""
    if split == "all":
        return list(gold)
    cards = [s.card for s in sources if s.card]
    if not cards:
        raise ValueError(f"--split {split} needs a model directory with a model card")
    wanted = set.intersection(*(set(card["data"][f"{split}_documents"]) for card in cards))
    selected = [doc for doc in gold if doc.doc_id in wanted]
    if not selected:
        raise ValueError(f"no {split} document of the model(s) is in the gold exports")
    return selected


def run_context(exports: Sequence[str | Path], split: str, command: str, samples: int, seed: int) -> dict:
    """What a report records of how it was made: the gold files (with sha256), split, command, time."""
    return {
        "gold_files": [{"path": str(p), "sha256": sha256_file(p)} for p in exports],
        "split": split,
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bootstrap": {"samples": samples, "seed": seed},
    }


def evaluate_source(
    path: str | Path,
    exports: Sequence[str | Path],
    fallback_labels: Callable[[], Sequence[str]],
    *,
    split: str = "all",
    samples: int = 1000,
    seed: int = 0,
    command: str = "",
) -> EvaluationReport:
    """The evaluation report of a model directory or prediction file on the gold `exports`. A model
    brings its own label set; a prediction file is scored with `fallback_labels()` (e.g. a config's)."""
    source = open_source(path)
    labels = source.labels or list(fallback_labels())
    every_gold = load_documents(exports, labels, gold_edge_punctuation([source]))
    gold = select_documents(every_gold, split, [source])
    predicted = source_predictions(source, gold)
    unscored = predictions_without_gold(predicted, every_gold)
    context = {
        "model": source.name,
        "source": source.path,
        **run_context(exports, split, command, samples, seed),
        "documents": len(gold),
        "base_model": (source.card or {}).get("base_model"),
        "model_card": source.card,
        "predictions_without_gold": {source.name: unscored} if unscored else {},
    }
    return build_report(gold, predicted, labels, samples=samples, seed=seed, context=context)


def compare_sources(
    paths: Sequence[str | Path],
    exports: Sequence[str | Path],
    fallback_labels: Callable[[], Sequence[str]],
    *,
    split: str = "all",
    samples: int = 1000,
    seed: int = 0,
    command: str = "",
) -> Comparison:
    """`compare_systems` over model directories and prediction files; models must share one label set,
    which prediction files are scored with (`fallback_labels()` when only prediction files are given)."""
    sources = [open_source(path) for path in paths]
    if len(sources) < 2:
        raise ValueError("compare needs at least two versions (A B [C ...])")
    label_sets = {tuple(s.labels) for s in sources if s.labels}
    if len(label_sets) > 1:
        raise ValueError(
            "the models have different label sets: "
            + "; ".join(f"{s.path}: {', '.join(s.labels)}" for s in sources if s.labels)
        )
    labels = list(label_sets.pop()) if label_sets else list(fallback_labels())
    every_gold = load_documents(exports, labels, gold_edge_punctuation(sources))
    gold = select_documents(every_gold, split, sources)
    names = unique_names([s.name for s in sources])
    systems = {name: source_predictions(source, gold) for name, source in zip(names, sources)}
    unscored = {name: predictions_without_gold(predicted, every_gold) for name, predicted in systems.items()}
    context = {
        "model": " vs ".join(names),
        **run_context(exports, split, command, samples, seed),
        "documents": len(gold),
        "predictions_without_gold": {name: ids for name, ids in unscored.items() if ids},
    }
    return compare_systems(gold, systems, labels, sources=sources, samples=samples, seed=seed, context=context)
