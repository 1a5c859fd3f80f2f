"""Rebuild data/manifest.csv from the raw documents under data/raw/.

Usage: python scripts/build_manifest.py
"""

from pathlib import Path

from policy_ner.corpus import manifest_entry, write_manifest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"

SOURCES = {
    "seeds": ("seed document received from the project's user (shared/seeds); news and web articles, "
              "web-page leftovers kept as received",
              "third-party article text kept for research annotation; check rights before redistributing"),
    "corpus": ("official policy document or government work report, see data/raw/corpus/SOURCES.md",
               "official document of a state organ, excluded from copyright (PRC Copyright Law art. 5)"),
}

entries = [manifest_entry(path, DATA, *SOURCES[folder])
           for folder in SOURCES for path in sorted((DATA / "raw" / folder).glob("*.txt"))]
write_manifest(entries, DATA / "manifest.csv")
print(f"wrote {DATA / 'manifest.csv'}: {len(entries)} documents")
