"""Documents in, one at a time: `.txt` files, folders of them (recursive, with a glob), JSONL files (one
document per line, text and id fields configurable) and standard input.

Bytes are decoded as UTF-8 (with or without BOM), else GB18030 (a superset of GBK and GB2312) or Big5,
whichever reads as text (an even case is refused), and the encoding is reported per document. The decoded text is never modified (no newline translation, no
trimming), so offsets index it exactly. A bad input (binary, undecodable, empty, a malformed JSONL
line) becomes a `Skipped` naming its source.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import charset_normalizer

DEFAULT_GLOB = "**/*.txt"
LEGACY_ENCODINGS = ("gb18030", "big5")
"""Tried, in this order, on documents that are not UTF-8 (`legacy_chinese`)."""
EXIT_SKIPPED = 3
"""Exit status of a run that finished but skipped some inputs."""
INPUT_FORMATS = ("auto", "text", "jsonl")
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
    """`utf-8`, `utf-8-sig` (UTF-8 with BOM), `gb18030` or `big5`."""
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
    GB18030 or Big5 (`legacy_chinese`). Raises `BadInput` for binary data, UTF-16, bytes no encoding
    decodes plausibly, and texts that are empty or only whitespace."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadInput("UTF-16 text is not supported; convert it to UTF-8")
    if b"\x00" in data:
        raise BadInput("binary file (NUL bytes)")
    if data.startswith(codecs.BOM_UTF8):
        text, encoding = _decode(data[len(codecs.BOM_UTF8) :], "utf-8"), "utf-8-sig"
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            text, encoding = legacy_chinese(data, _not_in("utf-8", data, exc))
    controls = len(_CONTROL.findall(text))
    if controls > CONTROL_SHARE * len(text):
        raise BadInput(f"binary file ({controls} control characters)")
    if not text.strip():
        raise BadInput("empty" if not text else "empty (whitespace only)")
    return text, encoding


def _not_in(encoding: str, data: bytes, error: UnicodeDecodeError) -> str:
    return f"not {encoding.upper()} (byte 0x{data[error.start]:02x} at offset {error.start})"


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadInput(f"undecodable: {_not_in(encoding, data, exc)}") from None


def legacy_chinese(data: bytes, utf8_failure: str) -> tuple[str, str]:
    """Bytes that are not UTF-8, read as GB18030 (mainland) or Big5 (Taiwan, Hong Kong). GB18030 decodes
    nearly any byte string, Big5 text included (as garbage), so when both decode, charset-normalizer's
    measure of how readable each result is decides; a tie is refused rather than guessed."""
    decoded, failures = {}, [utf8_failure]
    for encoding in LEGACY_ENCODINGS:
        try:
            decoded[encoding] = data.decode(encoding)
        except UnicodeDecodeError as exc:
            failures.append(_not_in(encoding, data, exc))
    if not decoded:
        raise BadInput("undecodable: " + "; ".join(failures))
    if len(decoded) == 1:
        ((encoding, text),) = decoded.items()
        return text, encoding
    matches = list(charset_normalizer.from_bytes(data, cp_isolation=list(decoded)))
    if not matches:
        raise BadInput(f"undecodable: {utf8_failure}; neither GB18030 nor Big5 gives readable text")
    if len(matches) > 1 and (matches[0].chaos, matches[0].coherence) == (matches[1].chaos, matches[1].coherence):
        raise BadInput(
            f"ambiguous encoding: {utf8_failure}, and it reads equally well as GB18030 and as Big5; convert it to UTF-8"
        )
    encoding = matches[0].encoding
    return decoded[encoding], encoding


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


def plan_inputs(
    inputs: Sequence[str | Path], glob: str = DEFAULT_GLOB, input_format: str = "auto"
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


def refuse_output_among_inputs(sources: Sequence[InputSource], output: str | Path) -> None:
    """An error when `output` is one of the files to read (the same path, or a link to the same file):
    writing it would change the input while it is read, and `--resume` would cut its last line."""
    output = Path(output)
    for source in sources:
        if source.path is not None and _same_file(source.path, output):
            raise ValueError(
                f"{output}: the output is also an input ({source.path}); write the predictions to another file"
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def _kind(path: Path, input_format: str) -> str:
    if input_format != "auto":
        return input_format
    return "jsonl" if path.suffix.lower() == ".jsonl" else "text"


def read_documents(
    sources: Sequence[InputSource], text_field: str = "text", id_field: str = "doc_id", stdin: BinaryIO | None = None
) -> Iterator[InputDocument | Skipped]:
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
    return (stdin or sys.stdin.buffer).read()


def _jsonl_documents(
    source: InputSource, text_field: str, id_field: str, stdin: BinaryIO | None
) -> Iterator[InputDocument | Skipped]:
    """One document per non-blank line; each line is decoded on its own (UTF-8, else GB18030)."""
    handle = (stdin or sys.stdin.buffer) if source.path is None else open(source.path, "rb")
    try:
        for line_number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            where = f"{source.name}:{line_number}"
            try:
                if line_number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw_text, encoding = raw[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
                else:
                    raw_text, encoding = decode_text(raw)
                yield _jsonl_document(json.loads(raw_text), where, encoding, len(raw), text_field, id_field)
            except (BadInput, UnicodeDecodeError, json.JSONDecodeError) as exc:
                reason = f"not JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)
                yield Skipped(where, reason, len(raw))
    finally:
        if source.path is not None:
            handle.close()


def _jsonl_document(
    record, where: str, encoding: str, size: int, text_field: str, id_field: str
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
