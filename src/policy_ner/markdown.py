"""Markdown tables: the one renderer behind every table the project prints or writes (reports, model
cards, the registry, cross-validation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def escape(value: Any) -> str:
    """A cell's text with what would break a table row escaped: backslashes and pipes; a newline shows as ⏎."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "⏎").replace("\r", "")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table. `align` has one character per column, `l` (the default for
    missing ones) or `r`; cells are escaped."""
    marks = ["---:" if (align[i : i + 1] == "r") else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "|" + "|".join(marks) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells for {len(header)} columns: {row!r}")
        lines.append("| " + " | ".join(escape(cell) for cell in row) + " |")
    return "\n".join(lines)
