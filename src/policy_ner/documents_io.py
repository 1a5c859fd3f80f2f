"""Documents in and predictions out, one document at a time.

In: `.txt` files, folders of them (recursive, with a glob), JSONL files (one document per line, text
and id fields configurable) and standard input. Bytes are decoded as UTF-8 (with or without BOM),
else GB18030 (a superset of GBK and GB2312), and the encoding is reported per document. The decoded
text is never modified (no newline translation, no trimming), so offsets index it exactly. A bad
input (binary, undecodable, empty, a malformed JSONL line) becomes a `Skipped` naming its source.

Out: JSONL (one prediction record per line), CSV (one row per entity) or Label Studio tasks with
predictions (a JSON array, one task per line). Every writer flushes after each document, and an
existing output is read back for `--resume`: the doc ids already there are returned and anything
a crash left half-written is cut off first.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator, Protocol, Sequence

from .labelstudio import span_result

if TYPE_CHECKING:
    from .inference import Entity

DEFAULT_GLOB = "**/*.txt"
INPUT_FORMATS = ("auto", "text", "jsonl")
OUTPUT_FORMATS = ("jsonl", "csv", "labelstudio")
STDIN = "-"
STDIN_DOC_ID = "stdin"
CONTROL_SHARE = 0.01
"""A decoded text with more than this share of control characters (other than whitespace) is binary."""
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")  # C0 controls and DEL that `str.isspace` rejects


@dataclass(frozen=True)
class InputDocument:
    doc_id: str
    text: str
    source: str
    """The file, `file:line` for JSONL, or `<stdin>`."""
    encoding: str
    """`utf-8`, `utf-8-sig` (UTF-8 with BOM) or `gb18030`."""
    size: int
    """Bytes read for it (for progress)."""


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str
    size: int = 0

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


class BadInput(ValueError):
    """Bytes that are not a text document: binary, undecodable or empty."""


# --- decoding ---------------------------------------------------------------------------------

def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a document's bytes: UTF-8 (a leading BOM is dropped: `utf-8-sig`), else
    GB18030. Raises `BadInput` for binary data, UTF-16, bytes neither encoding decodes, and texts
    that are empty or only whitespace."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadInput("UTF-16 text is not supported; convert it to UTF-8")
    if b"\x00" in data:
        raise BadInput("binary file (NUL bytes)")
    if data.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", data[len(codecs.BOM_UTF8):])]
    else:
        candidates = [("utf-8", data), ("gb18030", data)]
    failures = []
    for encoding, payload in candidates:
        try:
            text = payload.decode("utf-8" if encoding == "utf-8-sig" else encoding)
        except UnicodeDecodeError as exc:
            failures.append(f"not {encoding.upper()} (byte 0x{payload[exc.start]:02x} at offset {exc.start})")
            continue
        controls = len(_CONTROL.findall(text))
        if controls > CONTROL_SHARE * len(text):
            raise BadInput(f"binary file ({controls} control characters)")
        if not text.strip():
            raise BadInput("empty" if not text else "empty (whitespace only)")
        return text, encoding
    raise BadInput("undecodable: " + "; ".join(failures))


# --- inputs -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputSource:
    """One file (or standard input) to read, and how."""

    path: Path | None
    """None for standard input."""
    kind: str
    """`text` (one document) or `jsonl` (one document per line)."""

    @property
    def name(self) -> str:
        return "<stdin>" if self.path is None else str(self.path)

    def size(self) -> int:
        return 0 if self.path is None else self.path.stat().st_size

    def count(self) -> int | None:
        """Documents it holds at most (JSONL: non-blank lines), None when unknown (standard input)."""
        if self.path is None:
            return None
        if self.kind == "text":
            return 1
        with open(self.path, "rb") as handle:
            return sum(1 for line in handle if line.strip())


def plan_inputs(inputs: Sequence[str | Path], glob: str = DEFAULT_GLOB, input_format: str = "auto"
                ) -> list[InputSource]:
    """The files to read, in order: each file given, and the files of each folder that match `glob`
    (sorted). A missing path or a folder without a match is an error, raised before any work."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; expected one of {', '.join(INPUT_FORMATS)}")
    sources = []
    for item in inputs:
        if str(item) == STDIN:
            sources.append(InputSource(None, "jsonl" if input_format == "jsonl" else "text"))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.glob(glob) if p.is_file())
            if not files:
                raise FileNotFoundError(f"{path}: folder holds no file matching {glob}")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
        sources += [InputSource(f, _kind(f, input_format)) for f in files]
    return sources


def _kind(path: Path, input_format: str) -> str:
    if input_format != "auto":
        return input_format
    return "jsonl" if path.suffix.lower() == ".jsonl" else "text"


def read_documents(sources: Sequence[InputSource], text_field: str = "text", id_field: str = "doc_id",
                   stdin: BinaryIO | None = None) -> Iterator[InputDocument | Skipped]:
    """Every document of `sources`, in order, or a `Skipped` where one cannot be read."""
    for source in sources:
        if source.kind == "jsonl":
            yield from _jsonl_documents(source, text_field, id_field, stdin)
            continue
        try:
            data = _read_stdin(stdin) if source.path is None else source.path.read_bytes()
        except OSError as exc:
            yield Skipped(source.name, f"unreadable ({exc.strerror or exc})")
            continue
        doc_id = STDIN_DOC_ID if source.path is None else _file_doc_id(source.path)
        try:
            text, encoding = decode_text(data)
        except BadInput as exc:
            yield Skipped(source.name, str(exc), len(data))
            continue
        yield InputDocument(doc_id, text, source.name, encoding, len(data))


def read_all_documents(inputs: Sequence[str | Path], glob: str = DEFAULT_GLOB) -> list[InputDocument]:
    """Every document of `inputs`, for commands that need all of them (`ls push`): an input that
    cannot be read is an error here, not a skip."""
    documents = []
    for item in read_documents(plan_inputs(inputs, glob)):
        if isinstance(item, Skipped):
            raise BadInput(str(item))
        documents.append(item)
    return documents


def _file_doc_id(path: Path) -> str:
    return path.stem if path.suffix == ".txt" else path.name


def _read_stdin(stdin: BinaryIO | None) -> bytes:
    import sys

    return (stdin or sys.stdin.buffer).read()


def _jsonl_documents(source: InputSource, text_field: str, id_field: str, stdin: BinaryIO | None
                     ) -> Iterator[InputDocument | Skipped]:
    """One document per non-blank line; each line is decoded on its own (UTF-8, else GB18030)."""
    import sys

    handle = (stdin or sys.stdin.buffer) if source.path is None else open(source.path, "rb")
    try:
        for line_number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            where = f"{source.name}:{line_number}"
            try:
                if line_number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw_text, encoding = raw[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
                else:
                    raw_text, encoding = decode_text(raw)
                yield _jsonl_document(json.loads(raw_text), where, encoding, len(raw), text_field, id_field)
            except (BadInput, UnicodeDecodeError, json.JSONDecodeError) as exc:
                reason = f"not JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)
                yield Skipped(where, reason, len(raw))
    finally:
        if source.path is not None:
            handle.close()


def _jsonl_document(record, where: str, encoding: str, size: int, text_field: str, id_field: str
                    ) -> InputDocument | Skipped:
    if not isinstance(record, dict):
        return Skipped(where, "not a JSON object", size)
    doc_id, text = record.get(id_field), record.get(text_field)
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or str(doc_id) == "":
        return Skipped(where, f"no {id_field!r} field (a non-empty string or integer)", size)
    if not isinstance(text, str):
        return Skipped(where, f"doc {doc_id}: no {text_field!r} string field", size)
    if not text.strip():
        return Skipped(where, f"doc {doc_id}: empty" + (" (whitespace only)" if text else ""), size)
    return InputDocument(str(doc_id), text, where, encoding, size)


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
        raise ValueError(f"{path}: cannot tell the output format from the suffix; name it with --format "
                         f"({', '.join(OUTPUT_FORMATS)})")
    return formats[suffix]


class PredictionWriter(Protocol):
    def write(self, document: InputDocument, entities: Sequence[Entity]) -> None: ...

    def close(self) -> None: ...


def open_writer(path: str | Path, fmt: str, *, resume: bool = False, overwrite: bool = False,
                model_version: str = "") -> tuple[PredictionWriter, set[str]]:
    """A writer appending to `path`, and the doc ids already complete there.

    Without `resume` or `overwrite`, an existing file is an error (so a long run is never lost to a
    forgotten flag). With `resume`, the file is read back and repaired (see `recover`)."""
    path = Path(path)
    if path.exists() and not (resume or overwrite):
        raise FileExistsError(f"{path} already exists; pass --resume to continue it or --overwrite to start again")
    done: set[str] = set()
    if resume and path.exists():
        done = recover(path, fmt)
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
    """The prediction record (`inference.prediction_record`) plus the document's source and encoding."""

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        from .inference import prediction_record

        record = {**prediction_record(document.doc_id, document.text, entities), "source": document.source,
                  "encoding": document.encoding}
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


CSV_COLUMNS = ("doc_id", "label", "start", "end", "text", "score", "source", "encoding")


class CsvWriter(_AppendingWriter):
    """One row per entity; a document without entities gets one row with the entity columns empty,
    so that every document read is accounted for. UTF-8 with a BOM, which spreadsheet programs need to
    show Chinese text."""

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        rows = [(e.label, e.start, e.end, e.text, e.score) for e in entities] or [("", "", "", "", "")]
        for label, start, end, text, score in rows:
            writer.writerow((document.doc_id, label, start, end, text, score, document.source, document.encoding))
        return buffer.getvalue().encode("utf-8")


class LabelStudioWriter(_AppendingWriter):
    """A JSON array of tasks ready to import for pre-annotation: `data` holds `text` and `doc_id` (what
    the labelling config of `policy-ner ls config` shows), `predictions` one prediction with the model
    version and a scored result per entity, `meta` the source and encoding. One task per line, each
    followed by a comma; `close` drops the last comma and closes the array."""

    def encode(self, document: InputDocument, entities: Sequence[Entity]) -> bytes:
        results = [span_result(f"{document.doc_id}-{i}", e.start, e.end, e.text, e.label, e.score)
                   for i, e in enumerate(entities)]
        prediction = {"model_version": self.model_version, "result": results}
        if entities:
            prediction["score"] = round(sum(e.score for e in entities) / len(entities), 4)
        task = {"data": {"text": document.text, "doc_id": document.doc_id}, "predictions": [prediction],
                "meta": {"source": document.source, "encoding": document.encoding}}
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
_HEADERS = {"jsonl": b"", "labelstudio": _LS_OPEN,
            "csv": codecs.BOM_UTF8 + (",".join(CSV_COLUMNS) + "\n").encode("utf-8")}


# --- resuming ---------------------------------------------------------------------------------

def recover(path: str | Path, fmt: str) -> set[str]:
    """The doc ids complete in an output file written by these writers, after cutting off what an
    interrupted run left incomplete: a last line without its newline or that does not parse (JSONL,
    Label Studio), and in a CSV the rows of the last document (it may have lost rows; it is predicted
    again). A finished Label Studio file is reopened for appending. A bad line before the end means
    the file is not such an output: an error naming the line, and the file is left alone."""
    path = Path(path)
    complete, keep = {"jsonl": _recover_jsonl, "csv": _recover_csv, "labelstudio": _recover_labelstudio}[fmt](path)
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


def _recover_jsonl(path: Path) -> tuple[set[str], tuple[int, bytes]]:
    done: set[str] = set()
    end = 0
    for number, line, offset in _lines_with_offsets(path):
        record = _parsed(line) if line.endswith(b"\n") else None
        if record is None or "doc_id" not in record:
            if line.strip() and _more_after(path, offset + len(line)):
                raise ValueError(f"{path}:{number}: not a prediction record; cannot resume this file")
            break
        done.add(str(record["doc_id"]))
        end = offset + len(line)
    return done, (end, b"")


def _recover_labelstudio(path: Path) -> tuple[set[str], tuple[int, bytes]]:
    """Task lines end with `,` while the run goes on; a finished file's last task has none and `]` follows."""
    done: set[str] = set()
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
        end, after = offset + len(body.removesuffix(b",")), b",\n"
    return done, (end, after)


def _recover_csv(path: Path) -> tuple[set[str], tuple[int, bytes]]:
    """Rows are read with the csv module (a quoted entity text may hold a newline) from lines whose
    byte offsets are counted; a row counts only when its last line ends with a newline."""
    header = _HEADERS["csv"]
    with open(path, "rb") as handle:
        if handle.read(len(header)) != header:
            raise ValueError(f"{path}: not a CSV written by policy-ner predict (its header differs); cannot resume it")
        lines = handle.read().splitlines(keepends=True)
    consumed = [len(header), b""]  # bytes read so far, last line read

    def feed() -> Iterator[str]:
        for line in lines:
            consumed[0] += len(line)
            consumed[1] = line
            yield line.decode("utf-8", errors="replace")

    rows: list[tuple[str, int]] = []  # (doc_id, offset where the row ends)
    try:
        for row in csv.reader(feed()):
            if not row or not consumed[1].endswith(b"\n"):
                break
            rows.append((row[0], consumed[0]))
    except csv.Error:
        pass  # a quote left open by the cut: the rows before it stand
    last = rows[-1][0] if rows else None
    while rows and rows[-1][0] == last:
        rows.pop()
    return {doc_id for doc_id, _ in rows}, (rows[-1][1] if rows else len(header), b"")


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
