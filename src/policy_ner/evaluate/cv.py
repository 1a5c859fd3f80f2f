"""k-fold cross-validation by source document, for the configured model and the baselines alike.

Folds are made of whole groups (the manifest's `group`: the chunks cut from one policy share one), so
no test chunk shares its mentions with a training chunk of the same document; `--group-by doc` gives the
older folds of single documents, and `--leave-out genre` one fold per genre (policy, work report,
news), which asks how the model does on a kind of text it was not trained on.

Every system is trained on the same k-1 folds and predicts the held-out fold, so each document is
predicted exactly once by each system. Scores are reported two ways: per fold (mean ± sample
standard deviation over the k folds, which shows how much a figure moves with the documents it is
measured on) and pooled (all out-of-fold predictions scored together, as one evaluation).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import markdown
from ..config import Config
from ..labelstudio.exports import identical_text_groups, load_documents, resolve_annotation_files
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
    name: str = ""
    """What the fold holds out when it is not just a share of the groups (leave-one-genre-out: the genre)."""


def assign_folds(
    documents: Sequence[Document], k: int, seed: int = 13, groups: Mapping[str, str] | None = None
) -> list[Fold]:
    """Deterministic folds of whole groups, balanced by size.

    `groups` maps doc ids to their group; a document it does not name, and every document when it is
    None, is a group of its own. Groups are taken largest first (ties by a salted hash of the group
    name, or of the doc id for a document of its own, so that without groups this is the assignment of
    single documents it always was) and each goes to the fold with the fewest characters so far, so one
    very long group cannot make a fold several times larger than another. The result depends on the
    doc ids, texts and groups only, not their order.
    """
    units = group_documents(documents, groups or {})
    if not 2 <= k <= len(units):
        what = "groups" if groups else "documents"
        raise ValueError(f"--folds must be between 2 and the number of {what} ({len(units)}), got {k}")

    def salted(name: str) -> str:
        return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()

    members: list[list[Document]] = [[] for _ in range(k)]
    sizes = [0] * k
    for _name, docs in sorted(units.items(), key=lambda u: (-sum(len(d.text) for d in u[1]), salted(u[0]))):
        target = min(range(k), key=lambda i: (sizes[i], i))
        members[target] += docs
        sizes[target] += sum(len(d.text) for d in docs)
    return folds_from_tests(documents, members)


def group_documents(documents: Sequence[Document], groups: Mapping[str, str]) -> dict[str, list[Document]]:
    """Group name -> its documents; an ungrouped document is keyed by its own doc id. Documents with
    identical texts join the group of the first of them (`identical_text_groups`), whatever `groups` says."""
    representative = identical_text_groups(documents)
    units: dict[str, list[Document]] = {}
    for doc in documents:
        first = representative[doc.doc_id]
        units.setdefault(groups.get(first, first), []).append(doc)
    return units


def genre_folds(documents: Sequence[Document], genres: Mapping[str, str]) -> list[Fold]:
    """Leave-one-genre-out: one fold per genre (in name order), its documents the test set and every
    other document the training set. Documents without a genre are always trained on, never tested."""
    by_genre: dict[str, list[Document]] = {}
    for doc in documents:
        if doc.doc_id in genres:
            by_genre.setdefault(genres[doc.doc_id], []).append(doc)
    if len(by_genre) < 2:
        raise ValueError(
            f"leave-one-genre-out needs documents of at least 2 genres, found {sorted(by_genre) or 'none'}"
        )
    names = sorted(by_genre)
    return [
        dataclasses.replace(fold, name=name)
        for fold, name in zip(folds_from_tests(documents, [by_genre[n] for n in names]), names)
    ]


def folds_from_tests(documents: Sequence[Document], tests: Sequence[Sequence[Document]]) -> list[Fold]:
    order = {doc.doc_id: i for i, doc in enumerate(documents)}
    folds = []
    for index, test in enumerate(tests):
        test_ids = {d.doc_id for d in test}
        folds.append(
            Fold(index, [d for d in documents if d.doc_id not in test_ids], sorted(test, key=lambda d: order[d.doc_id]))
        )
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
    grouping: dict = field(default_factory=dict)
    """How the folds were made: `by` (group, doc or genre), the manifest, and the documents it lacks."""
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
            "grouping": self.grouping,
            "folds": [
                {
                    "index": f.index,
                    **({"name": f.name} if f.name else {}),
                    "test_documents": [d.doc_id for d in f.test],
                    "test_characters": sum(len(d.text) for d in f.test),
                }
                for f in self.folds
            ],
            "per_fold": [
                {
                    "system": s.system,
                    "fold": s.fold,
                    "seconds": s.seconds,
                    "strict": s.strict.to_dict(),
                    "overlap": s.overlap,
                }
                for s in self.fold_scores
            ],
            "summary": self.summary(),
        }


def _strict_row(result: EvaluationResult, row: str):
    return result.micro if row == "micro" else result.per_label[row]


def _spread(per_fold: Sequence[float], pooled: float) -> dict[str, float]:
    values = np.asarray(per_fold, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": round(float(values.mean()), 4), "std": round(std, 4), "pooled": round(float(pooled), 4)}


def overlap_scores(
    gold: Sequence[Document], predicted: dict[str, PredictedDocument], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    matches = match_documents(gold, [predicted[d.doc_id] for d in gold])
    by_row = partial_match_scores(matches, labels)[OVERLAP]
    return {
        ("micro" if key == "overall" else key): {"precision": s.precision, "recall": s.recall, "f1": s.f1}
        for key, s in by_row.items()
    }


FitPredict = Callable[[Sequence[Document], Sequence[Document]], dict[str, PredictedDocument]]
"""(train documents, test documents) -> predictions for the test documents."""


def tagger_system(make: Callable[[], Tagger]) -> FitPredict:
    def run(train: Sequence[Document], test: Sequence[Document]) -> dict[str, PredictedDocument]:
        found = make().fit(train).predict([d.text for d in test])
        return {
            d.doc_id: PredictedDocument(
                d.doc_id, d.text, tuple(e.as_span() for e in entities), tuple(e.score for e in entities)
            )
            for d, entities in zip(test, found)
        }

    return run


def model_system(config: Config, vocab_texts: Sequence[str], log=print) -> FitPredict:
    from ..model.predictor import predict_documents  # torch loads only when a model is trained
    from ..train.dataset import default_cache_dir
    from ..train.run import fit_model

    def run(train: Sequence[Document], test: Sequence[Document]) -> dict[str, PredictedDocument]:
        fitted = fit_model(config, train, vocab_texts, log=log, cache_dir=default_cache_dir())
        return predict_documents(fitted.predictor(config), test)

    return run


def cross_validate(
    documents: Sequence[Document],
    labels: Sequence[str],
    systems: dict[str, FitPredict],
    k: int = 5,
    seed: int = 13,
    log=print,
    folds: Sequence[Fold] | None = None,
    grouping: dict | None = None,
) -> CrossValidation:
    """Every system on every fold: `folds` when given (e.g. `genre_folds`), else `assign_folds(documents,
    k, seed)` of single documents."""
    folds = list(folds) if folds is not None else assign_folds(documents, k, seed)
    k = len(folds)
    cv = CrossValidation(list(labels), folds, dict(grouping or {"by": "doc"}))
    for name, run in systems.items():
        cv.predictions[name] = {}
        for fold in folds:
            held_out = f" ({fold.name})" if fold.name else ""
            log(
                f"[{name}] fold {fold.index + 1}/{k}{held_out}: {len(fold.train)} train, {len(fold.test)} test documents"
            )
            started = time.perf_counter()
            predicted = run(fold.train, fold.test)
            seconds = round(time.perf_counter() - started, 1)
            cv.predictions[name].update(predicted)
            strict = evaluate(fold.test, predicted, labels)
            cv.fold_scores.append(
                FoldScores(name, fold.index, strict, overlap_scores(fold.test, predicted, labels), seconds)
            )
            log(f"[{name}] fold {fold.index + 1}/{k}: strict micro F1 {strict.micro.f1:.3f} ({seconds}s)")
    return cv


def systems_for(
    config: Config, vocab_texts: Sequence[str], baselines: Sequence[str], include_model: bool = True, log=print
) -> dict[str, FitPredict]:
    systems: dict[str, FitPredict] = {}
    if include_model:
        systems[MODEL] = model_system(config, vocab_texts, log=log)
    for name in baselines:
        make_baseline(name)  # fails early on an unknown name
        systems[name] = tagger_system(functools.partial(make_baseline, name))
    return systems


GROUPINGS = ("group", "doc")
LEAVE_OUT = ("genre",)


def config_folds(
    config: Config,
    documents: Sequence[Document],
    root: Path,
    *,
    k: int = 5,
    seed: int = 13,
    group_by: str = "group",
    leave_out: str | None = None,
) -> tuple[list[Fold], dict, str]:
    """The folds of `documents`, how they were made (for cv.json), and a note naming the documents the
    manifest (`data.manifest`) does not cover. `group_by="group"` keeps each source-document group of
    the manifest in one fold, `"doc"` folds single documents; `leave_out="genre"` makes one fold per genre."""
    from ..corpus import document_groups

    if group_by not in GROUPINGS or leave_out not in (None, *LEAVE_OUT):
        raise ValueError(f"unknown grouping {group_by!r} / leave-out {leave_out!r}")
    if leave_out is None and group_by == "doc":
        return assign_folds(documents, k, seed), {"by": "doc"}, ""
    manifest = Path(root) / config.data.manifest
    shown = str(config.data.manifest)
    if not manifest.is_file():
        if leave_out == "genre":
            raise FileNotFoundError(f"{manifest}: manifest not found; leave-one-genre-out needs its genre column")
        note = (
            f"{manifest} not found: each document is a group of its own (the folds of --group-by doc); "
            "set data.manifest to group chunks of one source document"
        )
        return (
            assign_folds(documents, k, seed),
            {
                "by": "group",
                "manifest": shown,
                "manifest_missing": True,
                "groups": {d.doc_id: d.doc_id for d in documents},
                "not_in_manifest": [d.doc_id for d in documents],
            },
            note,
        )
    groups, genres = document_groups(manifest)
    if leave_out == "genre":
        never = [d.doc_id for d in documents if d.doc_id not in genres]
        note = (
            (
                f"{len(never)} document(s) without a genre in {shown}, trained on in every fold and never tested: "
                f"{', '.join(never)}"
            )
            if never
            else ""
        )
        grouping = {
            "by": "genre",
            "manifest": shown,
            "genres": {d.doc_id: genres[d.doc_id] for d in documents if d.doc_id in genres},
            "never_tested": never,
        }
        return genre_folds(documents, genres), grouping, note
    missing = [d.doc_id for d in documents if d.doc_id not in groups]
    note = (
        f"{len(missing)} document(s) not in {shown}, each a group of its own: {', '.join(missing)}" if missing else ""
    )
    grouping = {
        "by": "group",
        "manifest": shown,
        "groups": {d.doc_id: groups.get(d.doc_id, d.doc_id) for d in documents},
        "not_in_manifest": missing,
    }
    return assign_folds(documents, k, seed, groups), grouping, note


def cv_title(config: Config, cv: CrossValidation) -> str:
    by = cv.grouping.get("by")
    if by == "genre":
        return f"Leave-one-genre-out: {config.name}"
    if by == "doc":
        return f"{len(cv.folds)}-fold cross-validation by document (ungrouped): {config.name}"
    return f"{len(cv.folds)}-fold cross-validation by source document: {config.name}"


def default_output(config: Config, cv: CrossValidation) -> Path:
    """eval/cv-<name>/ for grouped folds, with -genre or -by-doc for the other two."""
    suffix = {"genre": "-genre", "doc": "-by-doc"}.get(cv.grouping.get("by", ""), "")
    return Path("eval") / f"cv-{config.name}{suffix}"


def cross_validate_config(
    config: Config,
    root: Path,
    *,
    k: int = 5,
    seed: int = 13,
    group_by: str = "group",
    leave_out: str | None = None,
    baselines: Sequence[str] = ("wordlist", "crf", "lac"),
    include_model: bool = True,
    log=print,
) -> CrossValidation:
    """`cross_validate` of the config's model and `baselines` on the config's annotations, on the folds of
    `config_folds`."""
    documents = load_documents(
        resolve_annotation_files(config.data.annotations, root), config.labels, config.data.edge_punctuation
    )
    folds, grouping, note = config_folds(
        config, documents, root, k=k, seed=seed, group_by=group_by, leave_out=leave_out
    )
    if note:
        log(note)
    vocab_texts: list[str] = []
    if include_model:  # torch loads only when a model is trained
        from ..model.predictor import set_threads
        from ..train.run import vocabulary_texts

        set_threads(config.train.threads)
        vocab_texts = vocabulary_texts(config, documents, root)[0]
    systems = systems_for(config, vocab_texts, baselines, include_model=include_model, log=log)
    return cross_validate(documents, config.labels, systems, folds=folds, grouping=grouping, log=log)


def cv_markdown(cv: CrossValidation, title: str, command: str, names: dict[str, str] | None = None) -> str:
    """The results table: strict F1 per label and micro as mean ± std over folds, pooled strict F1,
    and overlap F1; then precision and recall, and what each fold held out."""
    if cv.grouping.get("by") == "genre":
        return genre_markdown(cv, title, command, names)
    names = names or {}
    summary = cv.summary()
    rows = [*cv.labels, "micro"]
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        f"{len(cv.folds)} folds {folds_description(cv.grouping)} ({sum(len(f.test) for f in cv.folds)} "
        f"documents, {sum(len(d.text) for f in cv.folds for d in f.test):,} characters). Cells: strict F1 "
        "mean ± std over folds; the pooled figure scores all out-of-fold predictions at once.",
        "",
        markdown.table(
            ["system", *rows, "pooled micro", "overlap micro F1"],
            [
                [
                    names.get(system, system),
                    *(f"{by_row[r]['f1']['mean']:.3f} ± {by_row[r]['f1']['std']:.3f}" for r in rows),
                    f"{by_row['micro']['f1']['pooled']:.3f}",
                    f"{by_row['micro']['overlap_f1']['mean']:.3f} ± {by_row['micro']['overlap_f1']['std']:.3f}",
                ]
                for system, by_row in summary.items()
            ],
            "l" + "r" * (len(rows) + 2),
        ),
        "",
        "Strict precision / recall (mean over folds):",
        "",
        markdown.table(
            ["system", *rows],
            [
                [
                    names.get(system, system),
                    *(f"{by_row[r]['precision']['mean']:.3f} / {by_row[r]['recall']['mean']:.3f}" for r in rows),
                ]
                for system, by_row in summary.items()
            ],
            "l" + "r" * len(rows),
        ),
    ]
    lines += ["", "Folds (test documents):", ""]
    lines += [f"- fold {f.index + 1}: {fold_members(f, cv.grouping)}" for f in cv.folds]
    lines += ["", time_line(cv, names), ""]
    return "\n".join(lines)


def folds_description(grouping: dict) -> str:
    if grouping.get("by") != "group":
        return "by document (ungrouped: chunks of one source document may fall in different folds)"
    if grouping.get("manifest_missing"):
        return (
            f"by document (the manifest `{grouping['manifest']}` was not found, so each document is a group of its own)"
        )
    text = (
        f"by source document (the `group` column of `{grouping['manifest']}`: "
        f"{len(set(grouping['groups'].values()))} groups; the chunks of one document stay in one fold)"
    )
    missing = grouping.get("not_in_manifest") or []
    if missing:
        text += f"; {len(missing)} document(s) not in it are groups of their own: {', '.join(missing)}"
    return text


def fold_members(fold: Fold, grouping: dict) -> str:
    """A fold's test documents, under their group names when the folds are grouped."""
    if grouping.get("by") != "group":
        return ", ".join(d.doc_id for d in fold.test)
    by_group: dict[str, list[str]] = {}
    for doc in fold.test:
        by_group.setdefault(grouping["groups"].get(doc.doc_id, doc.doc_id), []).append(doc.doc_id)
    return "; ".join(f"{group} ({', '.join(docs)})" if docs != [group] else group for group, docs in by_group.items())


def time_line(cv: CrossValidation, names: dict[str, str]) -> str:
    seconds = {s: sum(x.seconds for x in cv.fold_scores if x.system == s) for s in cv.systems}
    return "Time (train + predict, all folds): " + ", ".join(f"{names.get(s, s)} {t:.0f} s" for s, t in seconds.items())


def genre_markdown(cv: CrossValidation, title: str, command: str, names: dict[str, str] | None = None) -> str:
    """Leave-one-genre-out: strict micro F1 of each system on each held-out genre (trained on the
    others), and per label."""
    names = names or {}
    genres = [f.name for f in cv.folds]
    scores = {(s.system, cv.folds[s.fold].name): s for s in cv.fold_scores}
    never = cv.grouping.get("never_tested") or []
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        f"One fold per genre of `{cv.grouping.get('manifest')}` (the `genre` column): each system is trained on "
        "the other genres' documents and tested on the held-out genre's."
        + (
            f" Documents without a genre ({', '.join(never)}) are trained on in every fold, never tested."
            if never
            else ""
        ),
        "",
        "Strict micro F1 per held-out genre (test documents, gold entities):",
        "",
        markdown.table(
            [
                "system",
                *(
                    f"{g} ({len(f.test)} docs, {scores[next(iter(cv.systems)), g].strict.micro.support} entities)"
                    for g, f in zip(genres, cv.folds)
                ),
                "mean",
            ],
            [
                [names.get(system, system), *(f"{v:.3f}" for v in values), f"{sum(values) / len(values):.3f}"]
                for system, values in (
                    (system, [scores[system, g].strict.micro.f1 for g in genres]) for system in cv.systems
                )
            ],
            "l" + "r" * (len(genres) + 1),
        ),
        "",
        "Per label (strict F1; overlap micro F1 last):",
        "",
        markdown.table(
            ["system", "held out", *cv.labels, "micro", "overlap micro"],
            [
                [
                    names.get(system, system),
                    genre,
                    *(f"{scores[system, genre].strict.per_label[label].f1:.3f}" for label in cv.labels),
                    f"{scores[system, genre].strict.micro.f1:.3f}",
                    f"{scores[system, genre].overlap['micro']['f1']:.3f}",
                ]
                for system in cv.systems
                for genre in genres
            ],
            "ll" + "r" * (len(cv.labels) + 2),
        ),
    ]
    lines += ["", "Folds (test documents):", ""]
    lines += [f"- {f.name}: " + ", ".join(d.doc_id for d in f.test) for f in cv.folds]
    lines += ["", time_line(cv, names), ""]
    return "\n".join(lines)


def write_cross_validation(
    cv: CrossValidation, output: Path, title: str, command: str, names: dict[str, str] | None = None
) -> list[Path]:
    """cv.json, cv.md and one out-of-fold prediction file per system, written atomically."""
    import json

    from ..files import atomic_write_json, atomic_write_text
    from ..predict.outputs import prediction_record
    from ..types import Entity

    output = Path(output)
    paths = [
        atomic_write_json(output / "cv.json", {"title": title, "command": command, **cv.to_dict()}),
        atomic_write_text(output / "cv.md", cv_markdown(cv, title, command, names)),
    ]
    for system, predicted in cv.predictions.items():
        lines = []
        for doc_id, pred in predicted.items():
            scores = pred.scores or (1.0,) * len(pred.spans)
            entities = [
                Entity(s.label, s.start, s.end, pred.text[s.start : s.end], score)
                for s, score in zip(pred.spans, scores)
            ]
            lines.append(json.dumps(prediction_record(doc_id, pred.text, entities), ensure_ascii=False) + "\n")
        paths.append(atomic_write_text(output / "predictions" / f"{system}.jsonl", "".join(lines)))
    return paths
