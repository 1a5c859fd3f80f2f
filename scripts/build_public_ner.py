"""Build the transfer data of configs/transfer-public-org.yaml from ../shared/public-ner: MSRA's ORG and
CLUENER2020's organization, company and government mentions as ORG, only sentences holding one, packed
into ~500-character documents. Writes data/public-ner/*.json (git-ignored: other teams' data) and the
committed record data/public-ner/PUBLIC-NER.md with every file's sha256 and what was kept and dropped."""

from __future__ import annotations

import argparse
from pathlib import Path

from policy_ner.files import atomic_write_text, sha256_file
from policy_ner.labelstudio.imports import import_documents, write_export
from policy_ner.markdown import table

ROOT = Path(__file__).resolve().parent.parent
ORG_MAPPINGS = {
    "msra": ("msra/train.bio", "bio", {"ORG": "ORG"}),
    "cluener": ("cluener2020/train.json", "cluener", {"organization": "ORG", "company": "ORG", "government": "ORG"}),
}
PACK_CHARS = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "public-ner")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "public-ner")
    args = parser.parse_args()
    rows = []
    for name, (relative, fmt, mapping) in ORG_MAPPINGS.items():
        source = args.shared / relative
        documents, summary = import_documents(
            source, fmt, mapping=mapping, require_labels=["ORG"], max_chars=PACK_CHARS, id_prefix=f"{name}-train"
        )
        output = args.output / f"{name}-train-org.json"
        write_export(documents, summary.kept, output)
        mapped = ", ".join(f"{src} → {dst}" for src, dst in mapping.items())
        rows.append(
            [
                f"`{output.name}`",
                f"`{relative}` (`{sha256_file(source)[:16]}…`)",
                mapped,
                f"{summary.sentences:,} / {summary.characters:,}",
                f"{len(documents):,}",
                f"{summary.kept['ORG']:,}",
                summary.describe(summary.dropped),
                f"`{sha256_file(output)[:16]}…`",
            ]
        )
        print(f"{output}: {len(documents)} documents, {summary.kept['ORG']} ORG spans")
    header = ["export", "source (sha256)", "labels mapped", "sentences / characters kept", "documents", "ORG spans"]
    header += ["spans dropped (in kept sentences)", "export sha256"]
    record = [
        "# Transfer data from public NER sets (built, not committed)",
        "",
        "Built by `make public-ner` (`scripts/build_public_ner.py`) from `../shared/public-ner/` (see its",
        "SOURCES.md for origin and licence). Only sentences with at least one mapped mention are kept; consecutive",
        f"sentences are joined by a newline into documents of at most {PACK_CHARS} characters. Their conventions",
        "differ from the policy guidelines (spans may start or end with brackets, book-title marks), so the config",
        'that trains on them turns the edge rule off (`data.edge_punctuation: ""`).',
        "",
        table(header, rows),
        "",
    ]
    atomic_write_text(args.output / "PUBLIC-NER.md", "\n".join(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
