"""The Label Studio round trip against a live server (label-studio-sdk 2.x).

`push` imports documents as tasks, each with the model's pre-annotation when a model is given; a
doc id already in the project is never imported twice. `pull` takes a snapshot export, validates it
with the annotation reader, writes it atomically and says what changed since the previous version.

The server stores whatever it is sent (offsets, texts, labels are not checked), so the validation
here is the only guard. The API key is never printed or written: every error from the server is
re-raised as `LabelStudioError` with the key redacted.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..files import atomic_write_json
from ..types import Document, Entity, Span
from .exports import BOUNDARY_PUNCTUATION, AnnotationError, AnnotationIssue, load_documents, read_tasks
from .formats import FROM_NAME, TO_NAME, labeling_config, labels_tags, predicted_task, prediction

if TYPE_CHECKING:
    from label_studio_sdk import (
        AllRolesProjectList,
        Export,
        ImportApiRequest,
        LabelStudio,
        LseExportCreate,
        PredictionRequest,
        RoleBasedTask,
    )

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
ORDERS = ("input", "uncertainty")
UNCERTAINTY_SAMPLING = "Uncertainty sampling"
IMPORT_CHUNK = 100
"""Tasks per import request (the server takes up to 250K; small requests keep memory flat)."""


class Pretagger(Protocol):
    """What `push` needs of a model (`model.predictor.Predictor` is one): its version, its labels, and
    entities with an uncertainty per text."""

    version: str

    @property
    def labels(self) -> list[str]: ...

    def predict_with_uncertainty(self, texts: Sequence[str]) -> list[tuple[list[Entity], float]]: ...


class LabelStudioError(RuntimeError):
    """The server refused or failed a request, or cannot be reached. The message never holds the key."""


class PushConflict(ValueError):
    """Documents whose doc id is already in the project with another text; nothing was imported."""


class ExportRejected(AnnotationError):
    """The pulled export failed validation; the output file was left as it was."""

    def __init__(self, issues: list[AnnotationIssue], output: Path):
        super().__init__(issues)
        self.output = output
        self.args = (f"{self.args[0]}\n{output} was not written: correct these in Label Studio and pull again",)


def resolve_api_key(api_key: str | None, environ: Mapping[str, str] = os.environ) -> str:
    key = api_key or environ.get(API_KEY_ENV)
    if not key:
        raise ValueError(f"no Label Studio API key: set {API_KEY_ENV} (or pass --api-key)")
    return key


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


@contextlib.contextmanager
def connect(url: str, api_key: str) -> Iterator[LabelStudio]:
    """A client for `url`; server and network errors inside the block become `LabelStudioError`."""
    import httpx
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield LabelStudio(base_url=url.rstrip("/"), api_key=api_key)
    except ApiError as exc:
        if exc.status_code in (401, 403):
            message = (
                f"Label Studio at {url} refused the API key (HTTP {exc.status_code}): check {API_KEY_ENV} or --api-key"
            )
        else:
            message = f"Label Studio at {url} answered HTTP {exc.status_code}: {describe_error_body(exc.body)}"
        raise LabelStudioError(redact(message, api_key)) from None
    except httpx.HTTPError as exc:
        raise LabelStudioError(redact(f"cannot reach Label Studio at {url}: {exc}", api_key)) from None


def describe_error_body(body: Any) -> str:
    """A server error's body as a sentence: its validation errors field by field, else its detail."""
    if isinstance(body, dict):
        errors = body.get("validation_errors")
        if isinstance(errors, dict) and errors:
            return "; ".join(
                f"{name}: {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
                for name, problems in errors.items()
            )
        if body.get("detail"):
            return str(body["detail"])
    return str(body)


# --- projects ----------------------------------------------------------------------------------------

PROJECT_TITLE_LENGTH = (3, 50)
"""Label Studio's bounds on a project title (`PROJECT_TITLE_MIN_LEN`, `PROJECT_TITLE_MAX_LEN`)."""


def check_project_title(title: str) -> str:
    shortest, longest = PROJECT_TITLE_LENGTH
    if not shortest <= len(title) <= longest:
        raise ValueError(
            f"project title {title!r} has {len(title)} characters; Label Studio needs {shortest} to {longest}"
        )
    return title


@dataclass(frozen=True)
class ProjectRef:
    id: int
    title: str
    created: bool = False


def _server_id(item_id: int | None, what: str) -> int:
    """The id the server gave `what` (it gives every project, task and export one)."""
    if item_id is None:
        raise LabelStudioError(f"Label Studio returned {what} without an id")
    return item_id


def find_project(client: LabelStudio, title: str) -> ProjectRef | None:
    # The server's title filter matches substrings, case-insensitively. (The SDK's `list` leaves its
    # item type unbound, so the annotation supplies it.)
    projects: Iterable[AllRolesProjectList] = client.projects.list(title=title)
    found = [p for p in projects if p.title == title]
    if len(found) > 1:
        raise LabelStudioError(
            f"{len(found)} projects are titled {title!r} (ids "
            f"{', '.join(str(p.id) for p in found)}): rename all but one"
        )
    return ProjectRef(_server_id(found[0].id, f"project {title!r}"), title) if found else None


def ensure_project(client: LabelStudio, title: str, labels: Sequence[str]) -> ProjectRef:
    """The project titled `title`, created with our labelling config when missing. An existing one
    must label `data.text` with exactly `labels`, or its annotations could not be read back."""
    check_project_title(title)
    project = find_project(client, title)
    if project is None:
        created = client.projects.create(title=title, label_config=labeling_config(labels))
        return ProjectRef(_server_id(created.id, f"the new project {title!r}"), title, created=True)
    config = client.projects.get(project.id).label_config or ""
    tags = [t for t in labels_tags(config) if (t.from_name, t.to_name) == (FROM_NAME, TO_NAME)]
    if not tags or set(tags[0].labels) != set(labels):
        found = ", ".join(tags[0].labels) if tags else f'no <Labels name="{FROM_NAME}" toName="{TO_NAME}">'
        raise LabelStudioError(
            f"project {title!r} (id {project.id}) labels {found}, not {', '.join(labels)}: "
            f"use another project, or set its config to `policy-ner ls config`"
        )
    return project


# --- push --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExistingTask:
    task_id: int
    text: str
    model_versions: frozenset[str]


@dataclass(frozen=True)
class PushPlan:
    new: tuple[Document, ...]
    present: tuple[Document, ...]
    """Already in the project with the same text: not imported again."""
    needs_prediction: tuple[Document, ...]
    """Present, but without a pre-annotation from this model version."""


@dataclass(frozen=True)
class PushResult:
    project: ProjectRef
    imported: tuple[str, ...]
    """Doc ids of the new tasks, in import order (task ids ascend in this order)."""
    present: tuple[str, ...]
    predictions_added: tuple[str, ...]
    """Doc ids of existing tasks that received this model's pre-annotation."""
    model_version: str | None
    order: str
    uncertainty: dict[str, float]


def plan_push(
    documents: Sequence[Document], existing: Mapping[str, ExistingTask], model_version: str | None
) -> PushPlan:
    """Split documents into new and present ones; a doc id present with another text is refused,
    because the annotations on that task point into the old text (rename the document or delete the
    task in Label Studio)."""
    conflicts = input_problems(documents)
    for doc in documents:
        task = existing.get(doc.doc_id)
        if task is not None and task.text != doc.text:
            where = next(
                (i for i, (a, b) in enumerate(zip(task.text, doc.text)) if a != b), min(len(task.text), len(doc.text))
            )
            conflicts.append(
                f"{doc.source}: doc id {doc.doc_id} is task {task.task_id} in the project with another "
                f"text (they differ from character {where}; {len(task.text)} vs {len(doc.text)} "
                f"characters)"
            )
    if conflicts:
        raise PushConflict(
            f"{len(conflicts)} document(s) not pushed, nothing imported:\n" + "\n".join(f"  - {c}" for c in conflicts)
        )
    present = tuple(d for d in documents if d.doc_id in existing)
    return PushPlan(
        new=tuple(d for d in documents if d.doc_id not in existing),
        present=present,
        needs_prediction=tuple(
            d for d in present if model_version is not None and model_version not in existing[d.doc_id].model_versions
        ),
    )


def input_problems(documents: Sequence[Document]) -> list[str]:
    """Documents that cannot become tasks whatever the project holds: empty, or a doc id given twice."""
    seen: dict[str, Document] = {}
    problems = []
    for doc in documents:
        if not doc.text.strip():
            problems.append(f"{doc.source}: doc {doc.doc_id} has no text")
        if doc.doc_id in seen:
            problems.append(f"{doc.source}: doc id {doc.doc_id} also comes from {seen[doc.doc_id].source}")
        seen[doc.doc_id] = doc
    return problems


def import_order(documents: Sequence[Document], uncertainty: Mapping[str, float], order: str) -> list[Document]:
    """`input`: as given; `uncertainty`: the documents the model is least sure about first."""
    if order == "input":
        return list(documents)
    if order == "uncertainty":
        return sorted(documents, key=lambda d: -uncertainty[d.doc_id])  # stable: ties keep input order
    raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")


def existing_tasks(client: LabelStudio, project_id: int) -> dict[str, ExistingTask]:
    """Tasks that carry a `data.doc_id`, by doc id (the first task wins if a doc id repeats)."""
    tasks: dict[str, ExistingTask] = {}
    # The SDK's `list` leaves its item type unbound here too (see find_project).
    listed: Iterable[RoleBasedTask] = client.tasks.list(project=project_id, fields="all")
    for task in listed:
        data = task.data or {}
        doc_id = data.get("doc_id")
        if doc_id is None or str(doc_id) in tasks:
            continue
        versions = frozenset(str(_field(p, "model_version") or "") for p in task.predictions or [])
        tasks[str(doc_id)] = ExistingTask(
            _server_id(task.id, f"a task of doc {doc_id}"), str(data.get("text", "")), versions
        )
    return tasks


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def push(
    url: str,
    api_key: str,
    project: str,
    documents: Sequence[Document],
    labels: Sequence[str],
    *,
    predictor: Pretagger | None = None,
    order: str = "input",
    batch_size: int = 32,
) -> PushResult:
    """Import `documents` into the project titled `project` (created if missing) as tasks with
    `data.text` and `data.doc_id`. With a predictor, every new task, and every existing one without
    this model version's pre-annotation, gets one (per-span scores, task score = 1 - uncertainty);
    the project's model version is set to it so the labelling screen shows these pre-annotations, and
    `order="uncertainty"` also imports the least certain documents first and switches the project to
    uncertainty sampling (Label Studio then serves the lowest task score first)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")
    if order == "uncertainty" and predictor is None:
        raise ValueError("ordering by uncertainty needs a model (--model)")
    if predictor is not None and set(predictor.labels) != set(labels):
        raise ValueError(
            f"the model {predictor.version} predicts {', '.join(predictor.labels)} but the label set "
            f"is {', '.join(labels)}"
        )
    plan_push(documents, {}, None)  # refuse bad input before creating anything on the server
    version = predictor.version if predictor is not None else None
    with connect(url, api_key) as client:
        ref = ensure_project(client, project, labels)
        existing = existing_tasks(client, ref.id)
        plan = plan_push(documents, existing, version)
        predicted = _predict(predictor, [*plan.new, *plan.needs_prediction], batch_size) if predictor else {}
        uncertainty = {doc_id: u for doc_id, (_, u) in predicted.items()}
        new = import_order(plan.new, uncertainty, order)

        def task_prediction(doc: Document) -> dict[str, Any] | None:
            if doc.doc_id not in predicted:
                return None
            entities, doc_uncertainty = predicted[doc.doc_id]
            return prediction(doc.doc_id, entities, version or "", 1.0 - doc_uncertainty)

        def existing_task_prediction(doc: Document) -> dict[str, Any]:
            found = task_prediction(doc)
            if found is None:
                raise ValueError(f"doc {doc.doc_id} needs a prediction but the model gave none")
            return {"task": existing[doc.doc_id].task_id, **found}

        for start in range(0, len(new), IMPORT_CHUNK):
            chunk = new[start : start + IMPORT_CHUNK]
            chunk_tasks = [predicted_task(d.doc_id, d.text, task_prediction(d)) for d in chunk]
            response = client.projects.import_tasks(
                id=ref.id,
                # The SDK sends plain dicts as they are; its pydantic request models are not needed.
                request=cast("list[ImportApiRequest]", chunk_tasks),
                commit_to_project=True,
                return_task_ids=True,
            )
            if response.task_count != len(chunk):
                raise LabelStudioError(f"project {project!r}: imported {response.task_count} of {len(chunk)} tasks")
        if plan.needs_prediction:
            predictions = [existing_task_prediction(d) for d in plan.needs_prediction]
            # Plain dicts, as for import_tasks above.
            client.projects.import_predictions(id=ref.id, request=cast("list[PredictionRequest]", predictions))
        if version is not None and order == "uncertainty":
            client.projects.update(id=ref.id, model_version=version, sampling=UNCERTAINTY_SAMPLING)
        elif version is not None:
            client.projects.update(id=ref.id, model_version=version)
    return PushResult(
        ref,
        tuple(d.doc_id for d in new),
        tuple(d.doc_id for d in plan.present),
        tuple(d.doc_id for d in plan.needs_prediction),
        version,
        order,
        uncertainty,
    )


def format_push(result: PushResult, labels: Sequence[str]) -> list[str]:
    """What a push did, for the terminal."""

    def with_uncertainty(doc_ids: Sequence[str]) -> list[str]:
        return [
            f"  {d}" + (f"  uncertainty {result.uncertainty[d]:.4f}" if d in result.uncertainty else "")
            for d in doc_ids
        ]

    state = "created with the labelling config for " + ", ".join(labels) if result.project.created else "exists"
    how = "".join(
        [
            ", least certain first" if result.order == "uncertainty" else "",
            f", with pre-annotations by model {result.model_version}" if result.model_version else "",
        ]
    )
    lines = [
        f"project {result.project.title!r} (id {result.project.id}): {state}",
        f"imported {len(result.imported)} new task(s){how}" + (":" if result.imported else ""),
        *with_uncertainty(result.imported),
    ]
    if result.present:
        lines.append(f"{len(result.present)} already in the project with the same text, not imported again")
    if result.predictions_added:
        lines.append(
            f"pre-annotations by model {result.model_version} added to {len(result.predictions_added)} of them:"
        )
        lines += with_uncertainty(sorted(result.predictions_added, key=lambda d: -result.uncertainty[d]))
    if result.model_version:
        lines.append(
            f"the project shows model {result.model_version}'s pre-annotations"
            + (" and serves the least certain task first" if result.order == "uncertainty" else "")
        )
    return lines


def _predict(predictor: Pretagger, documents: Sequence[Document], batch_size: int) -> dict[str, tuple[list, float]]:
    found: dict[str, tuple[list, float]] = {}
    for start in range(0, len(documents), batch_size):
        chunk = documents[start : start + batch_size]
        for doc, result in zip(chunk, predictor.predict_with_uncertainty([d.text for d in chunk])):
            found[doc.doc_id] = result
    return found


# --- pull --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentChange:
    doc_id: str
    added: tuple[Span, ...]
    removed: tuple[Span, ...]
    relabelled: tuple[tuple[Span, Span], ...]
    """(before, after): same offsets, another label."""
    text_changed: bool = False


@dataclass(frozen=True)
class ExportDiff:
    """Annotated documents of a new export against the previous version's."""

    new: tuple[Document, ...]
    changed: tuple[DocumentChange, ...]
    removed: tuple[Document, ...]
    unchanged: int

    @property
    def spans_added(self) -> int:
        return sum(len(d.spans) for d in self.new) + sum(len(c.added) for c in self.changed)

    @property
    def spans_removed(self) -> int:
        return sum(len(d.spans) for d in self.removed) + sum(len(c.removed) for c in self.changed)

    @property
    def spans_relabelled(self) -> int:
        return sum(len(c.relabelled) for c in self.changed)


def diff_documents(previous: Sequence[Document], current: Sequence[Document]) -> ExportDiff:
    before = {d.doc_id: d for d in previous}
    after = {d.doc_id: d for d in current}
    changes = [_document_change(before[d.doc_id], d) for d in current if d.doc_id in before]
    return ExportDiff(
        new=tuple(d for d in current if d.doc_id not in before),
        changed=tuple(c for c in changes if c is not None),
        removed=tuple(d for d in previous if d.doc_id not in after),
        unchanged=sum(c is None for c in changes),
    )


def _document_change(old: Document, new: Document) -> DocumentChange | None:
    if old.text != new.text:
        return DocumentChange(new.doc_id, new.spans, old.spans, (), text_changed=True)
    old_at = {(s.start, s.end): s for s in old.spans}
    new_at = {(s.start, s.end): s for s in new.spans}
    change = DocumentChange(
        new.doc_id,
        added=tuple(s for key, s in new_at.items() if key not in old_at),
        removed=tuple(s for key, s in old_at.items() if key not in new_at),
        relabelled=tuple(
            (old_at[key], s) for key, s in new_at.items() if key in old_at and old_at[key].label != s.label
        ),
    )
    return change if change.added or change.removed or change.relabelled else None


def format_diff(diff: ExportDiff, previous: Path | None, texts: Mapping[str, str]) -> list[str]:
    """Lines for the terminal; `texts` (doc id -> text) lets span lines show their surface."""

    def span(s: Span, doc_id: str) -> str:
        return f"{s.label} {s.start}:{s.end} {texts.get(doc_id, '')[s.start : s.end]!r}"

    against = f"against {previous}" if previous else "against no previous version (everything is new)"
    lines = [
        f"changes {against}: {len(diff.new)} new, {len(diff.changed)} changed, {len(diff.removed)} removed, "
        f"{diff.unchanged} unchanged document(s); spans +{diff.spans_added} -{diff.spans_removed}, "
        f"{diff.spans_relabelled} relabelled"
    ]
    lines += [f"  new      {d.doc_id}: {len(d.spans)} spans" for d in diff.new]
    lines += [f"  removed  {d.doc_id}: {len(d.spans)} spans no longer annotated" for d in diff.removed]
    for change in diff.changed:
        note = " (its text changed)" if change.text_changed else ""
        lines.append(
            f"  changed  {change.doc_id}{note}: +{len(change.added)} -{len(change.removed)} spans, "
            f"{len(change.relabelled)} relabelled"
        )
        lines += [f"             + {span(s, change.doc_id)}" for s in change.added if not change.text_changed]
        lines += [f"             - {span(s, change.doc_id)}" for s in change.removed if not change.text_changed]
        lines += [f"             ~ {span(a, change.doc_id)} was {b.label}" for b, a in change.relabelled]
    return lines


_VERSIONED = re.compile(r"^(?P<name>.+)-v(?P<number>\d+)\.json$")


def previous_version(output: str | Path) -> Path | None:
    """For `<name>-vN.json`, the `<name>-vM.json` beside it with the highest M below N."""
    output = Path(output)
    match = _VERSIONED.match(output.name)
    if not match:
        return None
    older = []
    for path in output.parent.glob(f"{glob.escape(match['name'])}-v*.json"):
        other = _VERSIONED.match(path.name)
        if other and other["name"] == match["name"] and int(other["number"]) < int(match["number"]):
            older.append((int(other["number"]), path))
    return max(older)[1] if older else None


@dataclass(frozen=True)
class PullResult:
    output: Path
    project: ProjectRef
    tasks: int
    documents: tuple[Document, ...]
    """Annotated documents, as training reads them."""
    unannotated: tuple[str, ...]
    """Tasks without a usable annotation (only predictions, or cancelled): kept in the file, not gold."""
    previous: Path | None
    diff: ExportDiff


def next_version(output: str | Path) -> Path | None:
    """For `<name>-vN.json`, the first `<name>-vM.json` (M > N) that does not exist yet."""
    output = Path(output)
    match = _VERSIONED.match(output.name)
    if not match:
        return None
    number = int(match["number"]) + 1
    while (candidate := output.with_name(f"{match['name']}-v{number}.json")).exists():
        number += 1
    return candidate


def refuse_existing_output(output: Path) -> None:
    """An export already at `output` is a delivery someone may train on: never replaced unasked."""
    if not output.exists():
        return
    suggestion = next_version(output)
    instead = f"pull into {suggestion}, or " if suggestion else "choose another --output, or "
    raise FileExistsError(
        f"{output} already exists; {instead}pass --overwrite to replace it (the summary then shows what changes)"
    )


def pull(
    url: str,
    api_key: str,
    project: str,
    output: str | Path,
    labels: Sequence[str],
    *,
    previous: str | Path | None = None,
    overwrite: bool = False,
    edge_punctuation: Iterable[str] = BOUNDARY_PUNCTUATION,
    timeout: float = 300,
) -> PullResult:
    """Snapshot-export the project (predictions in full, not as ids), validate every task, write the
    export to `output` atomically and diff it against `previous` (default: the file replaced when
    `overwrite`, else `previous_version(output)`). An existing `output` is an error unless `overwrite`.
    An export with any problem raises `ExportRejected` and leaves `output` untouched."""
    output = Path(output)
    if not overwrite:
        refuse_existing_output(output)
    if previous is None:
        previous = output if output.exists() else previous_version(output)
    before = load_documents([previous], labels, edge_punctuation) if previous is not None else []
    with connect(url, api_key) as client:
        ref = find_project(client, project)
        if ref is None:
            raise LabelStudioError(f"no project titled {project!r} at {url}")
        tasks = snapshot_export(client, ref.id, timeout)
    reading = read_tasks(tasks, labels, f"{url.rstrip('/')}/projects/{ref.id}", edge_punctuation)
    if reading.issues:
        raise ExportRejected(reading.issues, output)
    if not overwrite:
        refuse_existing_output(output)  # written by someone else while the export ran
    atomic_write_json(output, tasks)
    return PullResult(
        output,
        ref,
        len(tasks),
        tuple(reading.documents),
        tuple(reading.unannotated_tasks),
        Path(previous) if previous is not None else None,
        diff_documents(before, reading.documents),
    )


def format_pull(result: PullResult) -> list[str]:
    """What a pull found and wrote, and what changed, for the terminal."""
    spans = sum(len(d.spans) for d in result.documents)
    lines = [
        f"project {result.project.title!r} (id {result.project.id}): {result.tasks} task(s), "
        f"{len(result.documents)} annotated document(s), {spans} spans, all valid"
    ]
    if result.unannotated:
        lines.append(f"{len(result.unannotated)} task(s) without a submitted annotation (kept in the file, not gold)")
    lines += format_diff(result.diff, result.previous, {d.doc_id: d.text for d in result.documents})
    if result.previous == result.output:
        diff = result.diff
        held = len(diff.changed) + len(diff.removed) + diff.unchanged
        return [*lines, f"replaced {result.output} (it held {held} annotated document(s))"]
    return [*lines, f"wrote {result.output}"]


def snapshot_export(client: LabelStudio, project_id: int, timeout: float = 300) -> list[dict[str, Any]]:
    """Every task of the project as Label Studio's JSON export lists it, predictions included in full
    (the quick export lists only their ids). The snapshot is deleted from the server afterwards."""
    from label_studio_sdk import SerializationOptionRequest, SerializationOptionsRequest

    exports = client.projects.exports
    snapshot: LseExportCreate | Export = exports.create(
        project_id,
        title=f"policy-ner pull {time.strftime('%Y-%m-%d %H:%M:%S')}",
        serialization_options=SerializationOptionsRequest(predictions=SerializationOptionRequest(only_id=False)),
    )
    export_id = _server_id(snapshot.id, f"a snapshot export of project {project_id}")
    try:
        deadline = time.monotonic() + timeout
        while snapshot.status != "completed":
            if snapshot.status == "failed":
                raise LabelStudioError(f"the snapshot export {export_id} of project {project_id} failed")
            if time.monotonic() > deadline:
                raise LabelStudioError(
                    f"the snapshot export {export_id} of project {project_id} was not ready after {timeout:.0f} s"
                )
            time.sleep(0.5)
            snapshot = exports.get(project_id, export_id)
        payload = b"".join(exports.download(project_id, export_id, export_type="JSON"))
    finally:
        exports.delete(project_id, export_id)
    try:
        tasks = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise LabelStudioError(f"the snapshot export of project {project_id} is not JSON: {exc}") from None
    if not isinstance(tasks, list):
        raise LabelStudioError(f"the snapshot export of project {project_id} is not a list of tasks")
    return tasks
