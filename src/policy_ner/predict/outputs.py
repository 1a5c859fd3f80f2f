"""Predictions out: JSONL (one prediction record per line), CSV (one row per entity) or Label Studio
tasks with predictions (a JSON array, one task per line).

Every writer flushes after each document, and an existing output is read back for `--resume`: the doc
ids already there are returned and anything a crash left half-written is cut off first. The prediction
record (`prediction_record`) is the one shape every JSONL file of predictions has, written here and
read back by `read_predictions`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ..labelstudio.formats import predicted_task, prediction
from ..types import Entity
from .inputs import InputDocument

OUTPUT_FORMATS = ("jsonl", "csv", "labelstudio")


def prediction_record(doc_id: str, text: str, entities: Sequence[Entity], model_version: str | None = None) -> dict:
    """The record of one document's predictions; `model_version` names the model that made them."""
    record = {"doc_id": doc_id, "text": text, "entities": [e.to_dict() for e in entities]}
    if model_version is not None:
        record["model_version"] = model_version
    return record


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
                if record["text"][entity["start"] : entity["end"]] != entity["text"]:
                    raise ValueError(
                        f"{path}:{line_number}: doc {record.get('doc_id')}: entity "
                        f"{entity} does not match the text at its offsets"
                    )
            records.append(record)
    return records


# --- outputs ----------------------------------------------------------------------------------


def output_format(path: str | Path, explicit: str | None = None) -> str:
    """The format named, else the one the file's suffix says (.jsonl, .csv, .json for Label Studio)."""
    if explicit:
        if explicit not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {explicit!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        return explicit
    suffix = Path(path).suffix.lower()
    formats = {".jsonl": "jsonl", ".csv": "csv", ".json": "labelstudio"}
    if suffix not in formats:
        raise ValueError(
            f"{path}: cannot tell the output format from the suffix; name it with --format "
            f"({', '.join(OUTPUT_FORMATS)})"
        )
    return formats[suffix]


class PredictionWriter(Protocol):
    def write(self, document: InputDocument, entities: Sequence[Entity]) -> None: ...

    def close(self) -> None: ...


def open_writer(
    path: str | Path, fmt: str, *, resume: bool = False, overwrite: bool = False, model_version: str = ""
) -> tuple[PredictionWriter, set[str]]:
    """A writer appending to `path`, and the doc ids already complete there.

    Without `resume` or `overwrite`, an existing file is an error (so a long run is never lost to a
    forgotten flag). With `resume`, the file is read back and repaired (see `recover`); a file that
    holds another model version's predictions is refused, since one file should not mix two models."""
    path = Path(path)
    if path.exists() and not (resume or overwrite):
        raise FileExistsError(f"{path} already exists; pass --resume to continue it or --overwrite to start again")
    done: set[str] = set()
    if resume and path.exists():
        done = recover(path, fmt, model_version=model_version)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_HEADERS[fmt])
    writer = {"jsonl": JsonlWriter, "csv": CsvWriter, "labelstudio": LabelStudioWriter}[fmt]
    return writer(path, model_version), done


class _AppendingWriter:
    """Appends each document's bytes in one write and flushes, so a crash cuts at most the last one."""

    def __init__(self, path: Path, model_version: str):
        self.path = path
        self.model_version = model_version
        self.handle = open(path, "ab")

    def write(self, document: InputDocument, entities: Sequence[Entity]) -> None:
        self.handle.write(self.encode(document, entities))
        self.handle.flush()

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


class JsonlWriter(_AppendingWriter):
    """The prediction record (`prediction_record`, with the model version) plus the document's source
    and encoding."""

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        record = {
            **prediction_record(document.doc_id, document.text, entities, self.model_version),
            "source": document.source,
            "encoding": document.encoding,
        }
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


CSV_COLUMNS = ("doc_id", "label", "start", "end", "text", "score", "source", "encoding", "model_version")
CSV_LINE_END = "\r\n"


class CsvWriter(_AppendingWriter):
    """One row per entity; a document without entities gets one row with the entity columns empty,
    so that every document read is accounted for. UTF-8 with a BOM, which spreadsheet programs need to
    show Chinese text. Rows end in CRLF (RFC 4180), which also makes the csv module quote any field
    holding a carriage return: with bare LF endings a `\r` inside a doc id went out unquoted."""

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator=CSV_LINE_END)
        rows: list[tuple[str, int | str, int | str, str, float | str]] = [
            (e.label, e.start, e.end, e.text, e.score) for e in entities
        ] or [("", "", "", "", "")]
        for label, start, end, text, score in rows:
            writer.writerow(
                (
                    document.doc_id,
                    label,
                    start,
                    end,
                    text,
                    score,
                    document.source,
                    document.encoding,
                    self.model_version,
                )
            )
        return buffer.getvalue().encode("utf-8")


class LabelStudioWriter(_AppendingWriter):
    """A JSON array of tasks ready to import for pre-annotation: `data` holds `text` and `doc_id` (what
    the labelling config of `policy-ner ls config` shows), `predictions` one prediction with the model
    version and a scored result per entity, `meta` the source and encoding. One task per line, each
    followed by a comma; `close` drops the last comma and closes the array."""

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        score = sum(e.score for e in entities) / len(entities) if entities else None
        task = {
            **predicted_task(
                document.doc_id, document.text, prediction(document.doc_id, entities, self.model_version, score)
            ),
            "meta": {"source": document.source, "encoding": document.encoding},
        }
        return (json.dumps(task, ensure_ascii=False) + ",\n").encode("utf-8")

    def close(self) -> None:
        self.handle.flush()
        size = self.handle.tell()
        if size > len(_LS_OPEN):
            self.handle.truncate(size - len(b",\n"))
            self.handle.seek(0, os.SEEK_END)
            self.handle.write(b"\n")
        self.handle.write(_LS_CLOSE)
        super().close()


_LS_OPEN = b"[\n"
_LS_CLOSE = b"]\n"
_HEADERS = {
    "jsonl": b"",
    "labelstudio": _LS_OPEN,
    "csv": codecs.BOM_UTF8 + (",".join(CSV_COLUMNS) + CSV_LINE_END).encode("utf-8"),
}


# --- resuming ---------------------------------------------------------------------------------


class OtherModelVersion(ValueError):
    """`--resume` on a file whose predictions another model version made."""


def recover(path: str | Path, fmt: str, model_version: str | None = None) -> set[str]:
    """The doc ids complete in an output file written by these writers, after cutting off what an
    interrupted run left incomplete: a last line without its newline or that does not parse (JSONL,
    Label Studio), and in a CSV the rows of the last document (it may have lost rows; it is predicted
    again). A finished Label Studio file is reopened for appending. A bad line before the end means
    the file is not such an output: an error naming the line, and the file is left alone. So is a file
    holding a record of another model version than `model_version` (when given): `OtherModelVersion`."""
    path = Path(path)
    reader = {"jsonl": _recover_jsonl, "csv": _recover_csv, "labelstudio": _recover_labelstudio}[fmt]
    complete, keep, versions = reader(path)
    if model_version is not None and versions - {model_version}:
        found = ", ".join(sorted(v or "(none recorded)" for v in versions))
        raise OtherModelVersion(
            f"{path} holds predictions of model version {found}, not of {model_version}, the model of this run; "
            f"resume it with that model, or write to another file (--overwrite starts it again)"
        )
    with open(path, "r+b") as handle:
        handle.truncate(keep[0])
        handle.seek(0, os.SEEK_END)
        handle.write(keep[1])
    return complete


def _lines_with_offsets(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line with its newline, byte offset of its start)."""
    offset = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            yield number, line, offset
            offset += len(line)


_Recovered = tuple[set[str], tuple[int, bytes], set[str | None]]
"""Complete doc ids, (byte offset to cut at, bytes to append there), model versions of the complete records."""


def _recover_jsonl(path: Path) -> _Recovered:
    done: set[str] = set()
    versions: set[str | None] = set()
    end = 0
    for number, line, offset in _lines_with_offsets(path):
        record = _parsed(line) if line.endswith(b"\n") else None
        if record is None or "doc_id" not in record:
            if line.strip() and _more_after(path, offset + len(line)):
                raise ValueError(f"{path}:{number}: not a prediction record; cannot resume this file")
            break
        done.add(str(record["doc_id"]))
        versions.add(record.get("model_version"))
        end = offset + len(line)
    return done, (end, b""), versions


def _recover_labelstudio(path: Path) -> _Recovered:
    """Task lines end with `,` while the run goes on; a finished file's last task has none and `]` follows."""
    done: set[str] = set()
    versions: set[str | None] = set()
    end, after = len(_LS_OPEN), b""
    for number, line, offset in _lines_with_offsets(path):
        if number == 1:
            if line != _LS_OPEN:
                raise ValueError(f"{path}:1: not a Label Studio task file written by policy-ner; cannot resume it")
            continue
        body = line.rstrip(b"\n")
        if body == _LS_CLOSE.rstrip(b"\n"):
            break
        task = _parsed(body.removesuffix(b",")) if line.endswith(b"\n") else None
        if task is None or not isinstance(task.get("data"), dict) or "doc_id" not in task["data"]:
            if _more_after(path, offset + len(line)):
                raise ValueError(f"{path}:{number}: not a task line; cannot resume this file")
            break
        done.add(str(task["data"]["doc_id"]))
        versions.update(p.get("model_version") for p in task.get("predictions") or [{}] if isinstance(p, dict))
        end, after = offset + len(body.removesuffix(b",")), b",\n"
    return done, (end, after), versions


def _recover_csv(path: Path) -> _Recovered:
    """Rows are read with the csv module (a quoted entity text may hold a newline) from lines whose
    byte offsets are counted; a row counts only when its last line ends with a newline."""
    header = _HEADERS["csv"]
    with open(path, "rb") as handle:
        if handle.read(len(header)) != header:
            raise ValueError(f"{path}: not a CSV written by policy-ner predict (its header differs); cannot resume it")
        lines = handle.read().splitlines(keepends=True)
    consumed, last_line = len(header), b""  # bytes read so far, last line read

    def feed() -> Iterator[str]:
        nonlocal consumed, last_line
        for line in lines:
            consumed += len(line)
            last_line = line
            yield line.decode("utf-8", errors="replace")

    rows: list[tuple[str, int, str | None]] = []  # (doc_id, offset where the row ends, model version)
    try:
        for row in csv.reader(feed()):
            if not row or not last_line.endswith(b"\n"):
                break
            rows.append(
                (row[0], consumed, row[CSV_COLUMNS.index("model_version")] if len(row) == len(CSV_COLUMNS) else None)
            )
    except csv.Error:
        pass  # a quote left open by the cut: the rows before it stand
    last = rows[-1][0] if rows else None
    while rows and rows[-1][0] == last:
        rows.pop()
    return {doc_id for doc_id, _, _ in rows}, (rows[-1][1] if rows else len(header), b""), {v for _, _, v in rows}


def _parsed(line: bytes) -> dict | None:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _more_after(path: Path, offset: int) -> bool:
    """Whether anything but whitespace follows `offset` (a bad line there is damage, not a cut)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        rest = handle.read().strip()
    return bool(rest)
