"""Rebuild data/manifest.csv from the raw documents under data/raw/.

Each document's `group` is the source document it was cut from, read from data/raw/corpus/SOURCES.md:
files with the same source and path in their repository share a group, named after their doc ids
without the number and the `_pN` chunk suffix (the shortest such name of the group: 017_gwr_fujian_mintai5y
and 021_gwr_fujian are two excerpts of Fujian's report, group `gwr_fujian`). Its `genre` comes from the
source: `policy` (A, Nansha rules and service guides), `work_report` (B); the seeds are `news`, each a
group of its own.

Usage: python scripts/build_manifest.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from policy_ner.corpus import manifest_entry, write_manifest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
CORPUS_SOURCES = DATA / "raw" / "corpus" / "SOURCES.md"

SOURCES = {
    "seeds": (
        "seed document received from the project's user (shared/seeds); news and web articles, "
        "web-page leftovers kept as received",
        "third-party article text kept for research annotation; check rights before redistributing",
    ),
    "corpus": (
        "official policy document or government work report, see data/raw/corpus/SOURCES.md",
        "official document of a state organ, excluded from copyright (PRC Copyright Law art. 5)",
    ),
}
GENRE_OF_SOURCE = {"A": "policy", "B": "work_report"}
SEED_GENRE = "news"
FILE_ROW = re.compile(r"^\|\s*(?P<file>[^|\s]+\.txt)\s*\|\s*(?P<source>[A-Z])\s*\|\s*`(?P<path>[^`]+)`\s*\|")
CHUNK = re.compile(r"^\d+_(?P<name>.+?)(?:_p\d+)?$")


def source_documents(sources_md: Path) -> dict[str, tuple[str, str]]:
    """file name -> (source letter, path in its repository), from the file table of SOURCES.md."""
    rows = {}
    for number, line in enumerate(sources_md.read_text(encoding="utf-8").splitlines(), start=1):
        match = FILE_ROW.match(line)
        if match:
            if match["source"] not in GENRE_OF_SOURCE:
                raise ValueError(
                    f"{sources_md}:{number}: source {match['source']} has no genre "
                    f"(known: {', '.join(GENRE_OF_SOURCE)})"
                )
            rows[match["file"]] = (match["source"], match["path"])
    return rows


def corpus_groups(files: list[Path], sources_md: Path) -> dict[str, tuple[str, str]]:
    """doc id -> (group, genre) for the corpus files."""
    documents = source_documents(sources_md)
    missing = [f.name for f in files if f.name not in documents]
    if missing:
        raise ValueError(f"{sources_md}: no row for {', '.join(missing)}")
    members: dict[tuple[str, str], list[str]] = {}
    for file in files:
        members.setdefault(documents[file.name], []).append(file.stem)
    groups = {}
    for (source, _), doc_ids in members.items():
        name = min((CHUNK.match(d)["name"] for d in doc_ids), key=lambda n: (len(n), n))
        groups.update({d: (name, GENRE_OF_SOURCE[source]) for d in doc_ids})
    return groups


def main() -> int:
    corpus_files = sorted((DATA / "raw" / "corpus").glob("*.txt"))
    try:
        groups = corpus_groups(corpus_files, CORPUS_SOURCES)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    entries = [manifest_entry(path, DATA, *SOURCES["corpus"], *groups[path.stem]) for path in corpus_files]
    entries += [
        manifest_entry(path, DATA, *SOURCES["seeds"], f"seed_{path.stem}", SEED_GENRE)
        for path in sorted((DATA / "raw" / "seeds").glob("*.txt"))
    ]
    write_manifest(entries, DATA / "manifest.csv")
    print(f"wrote {DATA / 'manifest.csv'}: {len(entries)} documents in {len({e.group for e in entries})} groups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
