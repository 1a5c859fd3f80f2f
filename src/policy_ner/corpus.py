"""Raw documents in `data/` and their manifest (doc id, file, source, licence note, sha256, length)."""

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


def manifest_entry(path: Path, base: Path, source: str, licence: str) -> ManifestEntry:
    text = path.read_text(encoding="utf-8")
    return ManifestEntry(doc_id=path.stem, file=str(path.relative_to(base)), source=source, licence=licence,
                         sha256=sha256_file(path), chars=len(text))


def write_manifest(entries: list[ManifestEntry], path: str | Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(ManifestEntry)], lineterminator="\n")
    writer.writeheader()
    for entry in sorted(entries, key=lambda e: e.doc_id):
        writer.writerow(asdict(entry))
    return atomic_write_text(path, buffer.getvalue())


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [ManifestEntry(**{**row, "chars": int(row["chars"])}) for row in csv.DictReader(handle)]


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
    problems += [f"{p.relative_to(base)} is not in the manifest" for p in sorted(base.rglob("*.txt"))
                 if p not in listed]
    doc_ids = [e.doc_id for e in entries]
    problems += [f"doc id {d} is listed twice" for d in sorted({d for d in doc_ids if doc_ids.count(d) > 1})]
    return problems
