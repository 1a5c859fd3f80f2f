"""Raw documents in `data/` and their manifest (doc id, file, source, licence note, sha256, length, and the
source-document group and genre that validation splits by)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .files import atomic_write_text, sha256_file


@dataclass(frozen=True)
class ManifestEntry:
    doc_id: str
    file: str
    """Path relative to the manifest's folder."""
    source: str
    licence: str
    sha256: str
    chars: int
    group: str
    """The source document the file was cut from: chunks of one policy share it, so that cross-validation
    keeps them in one fold (a test chunk must not share its mentions with training chunks)."""
    genre: str
    """`policy` (rules and service guides), `work_report` or `news`: leave-one-genre-out holds out each."""


MANIFEST_COLUMNS = [f.name for f in fields(ManifestEntry)]


def manifest_entry(
    path: Path, base: Path, source: str, licence: str, group: str | None = None, genre: str = ""
) -> ManifestEntry:
    """The entry of `path`; `group` defaults to the document's own id (a source of its own)."""
    text = path.read_text(encoding="utf-8")
    return ManifestEntry(
        doc_id=path.stem,
        file=str(path.relative_to(base)),
        source=source,
        licence=licence,
        sha256=sha256_file(path),
        chars=len(text),
        group=group or path.stem,
        genre=genre,
    )


def write_manifest(entries: list[ManifestEntry], path: str | Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in sorted(entries, key=lambda e: e.doc_id):
        writer.writerow(asdict(entry))
    return atomic_write_text(path, buffer.getvalue())


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """The manifest's entries; a missing column, or an empty doc id or group, is an error naming the line."""
    try:
        handle = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: manifest not found") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: manifest lacks the column(s) {', '.join(missing)} (rebuild it with make manifest)"
            )
        entries = []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row["doc_id"] or not row["group"]:
                raise ValueError(f"{where}: empty doc_id or group")
            try:
                chars = int(row["chars"])
            except ValueError:
                raise ValueError(f"{where}: chars must be an integer, got {row['chars']!r}") from None
            entries.append(ManifestEntry(**{c: row[c] for c in MANIFEST_COLUMNS if c != "chars"}, chars=chars))
        return entries


def document_groups(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """doc id -> group and doc id -> genre (documents with no genre left out) from a manifest."""
    entries = read_manifest(path)
    return {e.doc_id: e.group for e in entries}, {e.doc_id: e.genre for e in entries if e.genre}


def verify_manifest(path: str | Path) -> list[str]:
    """Problems found: files missing, changed since the manifest was written, or not listed."""
    path = Path(path)
    base = path.parent
    entries = read_manifest(path)
    problems = []
    for entry in entries:
        file = base / entry.file
        if not file.is_file():
            problems.append(f"{entry.doc_id}: {entry.file} is missing")
        elif sha256_file(file) != entry.sha256:
            problems.append(f"{entry.doc_id}: {entry.file} changed (sha256 differs from the manifest)")
    listed = {base / e.file for e in entries}
    problems += [
        f"{p.relative_to(base)} is not in the manifest" for p in sorted(base.rglob("*.txt")) if p not in listed
    ]
    doc_ids = [e.doc_id for e in entries]
    problems += [f"doc id {d} is listed twice" for d in sorted({d for d in doc_ids if doc_ids.count(d) > 1})]
    return problems
