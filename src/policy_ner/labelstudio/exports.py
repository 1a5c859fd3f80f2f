"""Label Studio JSON exports in, validated `Document`s with `Span`s out.

Offsets are Python `str` indices into the task text (end exclusive). The reader accepts what a
real server exports: several annotations per task, cancelled annotations, tasks that only carry
predictions, results without `value.text`, and fields it does not know. Everything else that is
wrong is collected as `AnnotationIssue`s naming the file, task id, doc id and span, so one run
shows every problem in a delivery.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import charset_normalizer

from ..config import DEFAULT_EDGE_PUNCTUATION
from ..types import Document, Span

BOUNDARY_PUNCTUATION = frozenset(DEFAULT_EDGE_PUNCTUATION)
"""Characters a span may not start or end with unless a config says otherwise (`data.edge_punctuation`;
the policy guidelines: no surrounding punctuation)."""


@dataclass(frozen=True)
class AnnotationIssue:
    file: str
    task_id: Any
    doc_id: Any
    message: str
    span: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: task {self.task_id} (doc {self.doc_id})"
        return f"{where}: {self.message}" + (f" [span {self.span}]" if self.span else "")


class AnnotationError(ValueError):
    """One or more annotation problems; `issues` lists them all."""

    def __init__(self, issues: list[AnnotationIssue]):
        self.issues = issues
        shown = "\n".join(f"  - {issue}" for issue in issues[:50])
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        super().__init__(f"{len(issues)} annotation problem(s):\n{shown}{more}")


@dataclass
class ExportReading:
    """What reading one or more exports produced, including what was deliberately left out."""

    documents: list[Document] = field(default_factory=list)
    issues: list[AnnotationIssue] = field(default_factory=list)
    unannotated_tasks: list[str] = field(default_factory=list)
    """`file#task` of tasks with no usable (non-cancelled) annotation: not gold, so not used."""
    overridden: list[str] = field(default_factory=list)
    """Doc ids present in several files; the later file's annotation is the one kept."""
    identical_texts: list[list[str]] = field(default_factory=list)
    """Doc ids of documents sharing one text (each list sorted, two or more ids): kept, but one copy in
    training and another in dev would score the model on what it learnt."""

    def raise_for_issues(self) -> None:
        if self.issues:
            raise AnnotationError(self.issues)


def read_exports(
    paths: Iterable[str | Path], labels: Iterable[str], edge_punctuation: Iterable[str] = BOUNDARY_PUNCTUATION
) -> ExportReading:
    """Read exports in order; a doc id seen again replaces the earlier one (newer delivery wins).
    A span may not start or end with a character of `edge_punctuation` (`data.edge_punctuation`)."""
    labels = frozenset(labels)
    reading = ExportReading()
    by_id: dict[str, Document] = {}
    for path in paths:
        part = _read_export(Path(path), labels, frozenset(edge_punctuation))
        reading.issues += part.issues
        reading.unannotated_tasks += part.unannotated_tasks
        for doc in part.documents:
            if doc.doc_id in by_id:
                reading.overridden.append(f"{doc.doc_id}: {by_id[doc.doc_id].source} -> {doc.source}")
            by_id[doc.doc_id] = doc
    reading.documents = list(by_id.values())
    reading.identical_texts = [sorted(ids) for ids in _ids_by_text(reading.documents).values() if len(ids) > 1]
    return reading


def _ids_by_text(documents: Iterable[Document]) -> dict[str, list[str]]:
    by_text: dict[str, list[str]] = {}
    for doc in documents:
        by_text.setdefault(doc.text, []).append(doc.doc_id)
    return by_text


def identical_text_groups(documents: Iterable[Document]) -> dict[str, str]:
    """Doc id -> the smallest doc id with the same text (itself when its text is unique), so that
    splits and folds keep identical texts together."""
    return {doc_id: min(ids) for ids in _ids_by_text(documents).values() for doc_id in ids}


def describe_identical_texts(groups: list[list[str]], shown: int = 5) -> str:
    listed = "; ".join(", ".join(ids) for ids in groups[:shown])
    more = f"; and {len(groups) - shown} more" if len(groups) > shown else ""
    copies = sum(len(ids) for ids in groups)
    return f"{copies} documents share {len(groups)} text(s), kept in one split each: {listed}{more}"


def load_documents(
    paths: Iterable[str | Path], labels: Iterable[str], edge_punctuation: Iterable[str] = BOUNDARY_PUNCTUATION
) -> list[Document]:
    """Read and validate exports; raise `AnnotationError` listing every problem."""
    reading = read_exports(paths, labels, edge_punctuation)
    reading.raise_for_issues()
    return reading.documents


def _read_export(path: Path, labels: frozenset[str], edge_punctuation: frozenset[str]) -> ExportReading:
    reading = ExportReading()
    file = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        reading.issues.append(AnnotationIssue(file, "-", "-", "file not found"))
        return reading
    try:
        tasks = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        reading.issues.append(AnnotationIssue(file, "-", "-", not_utf8_message(data, exc)))
        return reading
    except json.JSONDecodeError as exc:
        reading.issues.append(AnnotationIssue(file, "-", "-", f"not a JSON file: {exc}"))
        return reading
    return read_tasks(tasks, labels, file, edge_punctuation)


def not_utf8_message(data: bytes, error: UnicodeDecodeError) -> str:
    """Why bytes that should be a UTF-8 export are not, with the encoding they look like."""
    best = charset_normalizer.from_bytes(data).best()
    looks = f"; it looks like {best.encoding.upper()}" if best is not None else ""
    source = best.encoding if best is not None else "<encoding>"
    return (
        f"not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}){looks}: Label Studio exports "
        f"are UTF-8, so export it again or convert it (iconv -f {source} -t UTF-8)"
    )


def read_tasks(
    tasks: Any, labels: Iterable[str], file: str, edge_punctuation: Iterable[str] = BOUNDARY_PUNCTUATION
) -> ExportReading:
    """Validate the parsed JSON of one export (from a file or straight from a server); `file` names it
    in every issue."""
    labels, edges = frozenset(labels), frozenset(edge_punctuation)
    reading = ExportReading()
    if isinstance(tasks, dict) and "data" in tasks:  # a single task, as the API returns it
        tasks = [tasks]
    if not isinstance(tasks, list):
        found = (
            f"an object with keys {', '.join(map(repr, list(tasks)[:5]))}"
            if isinstance(tasks, dict)
            else type(tasks).__name__
        )
        reading.issues.append(
            AnnotationIssue(file, "-", "-", f"expected a JSON list of tasks (a Label Studio export), found {found}")
        )
        return reading
    seen_ids: dict[str, Any] = {}
    seen_tasks: dict[Any, str] = {}
    for index, task in enumerate(tasks):
        task_id = task.get("id", f"#{index}") if isinstance(task, dict) else f"#{index}"
        if not isinstance(task, dict):
            reading.issues.append(AnnotationIssue(file, task_id, "-", "task is not a JSON object"))
            continue
        doc, issues = parse_task(task, labels, file, edges)
        reading.issues += issues
        if "id" in task and doc is not None:
            if task_id in seen_tasks and seen_tasks[task_id] != doc.doc_id:
                reading.issues.append(
                    AnnotationIssue(
                        file, task_id, doc.doc_id, f"task id also used for doc {seen_tasks[task_id]} in the same file"
                    )
                )
                continue
            seen_tasks.setdefault(task_id, doc.doc_id)
        if doc is None:
            if not issues:
                reading.unannotated_tasks.append(f"{file}#task={task_id}")
            continue
        if doc.doc_id in seen_ids:
            reading.issues.append(
                AnnotationIssue(
                    file, task_id, doc.doc_id, f"doc id also used by task {seen_ids[doc.doc_id]} in the same file"
                )
            )
            continue
        seen_ids[doc.doc_id] = task_id
        reading.documents.append(doc)
    return reading


def parse_task(
    task: dict[str, Any],
    labels: frozenset[str],
    file: str = "<task>",
    edge_punctuation: frozenset[str] = BOUNDARY_PUNCTUATION,
) -> tuple[Document | None, list[AnnotationIssue]]:
    """One exported task -> a validated Document, or None when it holds no usable annotation."""
    task_id = task.get("id", "?")
    raw_data = task.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    doc_id = data.get("doc_id") or f"task-{task_id}"
    text = data.get("text")

    def issue(message: str, span: str = "") -> AnnotationIssue:
        return AnnotationIssue(file, task_id, doc_id, message, span)

    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        return None, [issue(f"annotations must be a list of annotation objects, found {type(annotations).__name__}")]
    annotation = choose_annotation(annotations)
    if annotation is None:
        return None, []
    results = annotation.get("result") or []
    if not isinstance(results, list):
        return None, [
            issue(f"annotation {annotation.get('id')}: result must be a list, found {type(results).__name__}")
        ]
    if not isinstance(text, str):
        return None, [issue("task has no data.text string")]
    if not text.strip():
        return None, [issue("task text is empty")]
    spans, issues = [], []
    for position, result in enumerate(results):
        if not isinstance(result, dict):
            issues.append(issue(f"result #{position} is a {type(result).__name__}, not an object", repr(result)[:80]))
            continue
        if result.get("type") != "labels":
            continue  # relations, choices, text areas: not entity spans
        span, problem = _parse_result(result, text, labels)
        if problem:
            issues.append(issue(problem, _describe(result)))
        elif span is not None:
            issues += [issue(p, _describe(result)) for p in span_problems(span, text, edge_punctuation)]
            spans.append(span)
    spans.sort()
    issues += [issue(p) for p in overlap_problems(spans, text)]
    source = f"{file}#task={task_id}"
    return Document(doc_id=str(doc_id), text=text, spans=tuple(spans), source=source), issues


def choose_annotation(annotations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The annotation that counts as gold for a task.

    Cancelled (skipped) annotations never count. A `ground_truth` annotation wins; otherwise the
    most recently updated one, so a reviewer's later correction replaces the first pass.
    """
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        return None
    return max(usable, key=lambda a: (bool(a.get("ground_truth")), str(a.get("updated_at") or ""), a.get("id") or 0))


def _parse_result(result: dict[str, Any], text: str, labels: frozenset[str]) -> tuple[Span | None, str]:
    value = result.get("value")
    if not isinstance(value, dict):
        return None, "result has no value object"
    start, end, result_labels = value.get("start"), value.get("end"), value.get("labels")
    if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
        return None, "start/end must be integers"
    if not 0 <= start < end <= len(text):
        return None, f"offsets out of range for a text of {len(text)} characters"
    if not isinstance(result_labels, list) or len(result_labels) != 1:
        return None, f"a span needs exactly one label, got {result_labels!r}"
    label = result_labels[0]
    if label not in labels:
        return None, f"unknown label {label!r} (known: {', '.join(sorted(labels))})"
    if "text" in value and value["text"] != text[start:end]:
        return None, f"value.text {value['text']!r} differs from the task text there {text[start:end]!r}"
    return Span(start, end, label), ""


def span_problems(span: Span, text: str, edge_punctuation: frozenset[str] = BOUNDARY_PUNCTUATION) -> list[str]:
    """Boundary rules every span must satisfy (offsets already known to be in range)."""
    surface = span.text_in(text)
    problems = []
    if surface != surface.strip():
        problems.append("span has leading or trailing whitespace")
    elif surface[0] in edge_punctuation or surface[-1] in edge_punctuation:
        problems.append("span starts or ends with punctuation")
    return problems


def overlap_problems(spans: list[Span], text: str) -> list[str]:
    """Sorted spans must not overlap or nest."""
    problems = []
    for previous, current in zip(spans, spans[1:]):
        if current.start < previous.end:
            problems.append(f"overlapping spans {_span_repr(previous, text)} and {_span_repr(current, text)}")
    return problems


def _span_repr(span: Span, text: str) -> str:
    return f"{span.label} {span.start}:{span.end} {span.text_in(text)!r}"


def _describe(result: dict[str, Any]) -> str:
    raw_value = result.get("value")
    value: dict[str, Any] = raw_value if isinstance(raw_value, dict) else {}
    return f"id={result.get('id')} {value.get('labels')} {value.get('start')}:{value.get('end')} {value.get('text')!r}"


@dataclass(frozen=True)
class AnnotationStats:
    documents: int
    characters: int
    spans_per_label: dict[str, int]
    spans_per_document: dict[str, dict[str, int]]
    span_length: dict[str, dict[str, float]]
    """Per label: min, median, mean, max span length in characters."""


def compute_stats(documents: list[Document], labels: Iterable[str]) -> AnnotationStats:
    labels = list(labels)
    per_label = Counter(s.label for d in documents for s in d.spans)
    per_doc = {d.doc_id: {label: sum(s.label == label for s in d.spans) for label in labels} for d in documents}
    lengths: dict[str, dict[str, float]] = {}
    for label in labels + ["ALL"]:
        values = [s.end - s.start for d in documents for s in d.spans if label in ("ALL", s.label)]
        if values:
            lengths[label] = {
                "min": min(values),
                "median": statistics.median(values),
                "mean": round(statistics.fmean(values), 2),
                "max": max(values),
            }
    return AnnotationStats(
        documents=len(documents),
        characters=sum(len(d.text) for d in documents),
        spans_per_label={label: per_label.get(label, 0) for label in labels},
        spans_per_document=per_doc,
        span_length=lengths,
    )


def natural_key(path: str | Path) -> list[Any]:
    """Sort `corpus-v2` before `corpus-v10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def resolve_annotation_files(patterns: Iterable[str], root: Path) -> list[Path]:
    """Expand config patterns (relative to `root`) into files, in natural order; none found is an error."""
    files: list[Path] = []
    for pattern in patterns:
        candidate = Path(pattern)
        matches = (
            [candidate]
            if candidate.is_absolute() and candidate.exists()
            else sorted(root.glob(pattern), key=natural_key)
        )
        if not matches:
            raise FileNotFoundError(f"no annotation file matches {pattern!r} under {root}")
        files += [m for m in matches if m not in files]
    return files
