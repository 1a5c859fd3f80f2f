"""Human-readable renderings: evaluation and comparison reports (JSON, Markdown, self-contained
HTML with the plots inline).

A report is built once as a list of `Section`s of neutral blocks (paragraphs, tables, images,
folded details, code) and rendered to Markdown and HTML from that one description, so the two always
show the same figures.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import markdown
from ..files import atomic_write_bytes, atomic_write_json, atomic_write_text
from .evaluation import EvaluationReport, describe_unscored

# --- neutral report blocks, rendered to Markdown and HTML ----------------------------------------


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Any]]
    id: str = ""
    numeric: bool = True
    """Right-align every column but the first."""


@dataclass(frozen=True)
class Image:
    file_name: str
    png: bytes
    alt: str
    id: str = ""


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: list[Block]


Block = Paragraph | Table | Image | Code | Details


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]
    id: str = ""


@dataclass(frozen=True)
class Page:
    title: str
    facts: list[tuple[str, str]]
    sections: list[Section] = field(default_factory=list)

    def images(self) -> list[Image]:
        def walk(blocks):
            for block in blocks:
                if isinstance(block, Image):
                    yield block
                elif isinstance(block, Details):
                    yield from walk(block.blocks)

        return [image for section in self.sections for image in walk(section.blocks)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text, ""]
    if isinstance(block, Table):
        align = "l" + ("r" if block.numeric else "l") * (len(block.headers) - 1)
        return [markdown.table(block.headers, [[_cell(v) for v in row] for row in block.rows], align), ""]
    if isinstance(block, Image):
        return [f"![{block.alt}]({block.file_name})", ""]
    if isinstance(block, Code):
        return ["```", block.text.rstrip("\n"), "```", ""]
    return [f"**{block.summary}**", ""] + [line for inner in block.blocks for line in _md_block(inner)]


def render_markdown(doc: Page) -> str:
    lines = [f"# {doc.title}", ""]
    lines += [f"- **{name}**: {value}" for name, value in doc.facts] + [""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block)
    return "\n".join(lines).rstrip("\n") + "\n"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
       margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0.8em 0.4em 0; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.85em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
mark { background: #ffe08a; } details { margin: 0.5em 0; } summary { cursor: pointer; font-weight: 600; }
ul.facts { padding-left: 1.2em; }
"""


def _html_inline(text: str) -> str:
    """Escape, then render `code` spans and the 【entity】 marks of error contexts."""
    escaped = html.escape(text)
    parts = escaped.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)) if len(parts) % 2 else escaped
    return out.replace("【", "<mark>").replace("】", "</mark>")


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_html_inline(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td{' class=num' if block.numeric and i else ''}>{_html_inline(_cell(v))}</td>"
                for i, v in enumerate(row)
            )
            + "</tr>"
            for row in block.rows
        )
        ident = f' id="{html.escape(block.id)}"' if block.id else ""
        return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        ident = f' id="{html.escape(block.id)}"' if block.id else ""
        return f'<img{ident} alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Code):
        return f"<pre>{html.escape(block.text)}</pre>"
    inner = "".join(_html_block(b) for b in block.blocks)
    return f"<details><summary>{_html_inline(block.summary)}</summary>{inner}</details>"


def render_html(doc: Page) -> str:
    """One self-contained page: inline CSS, plots as base64 PNG, no script, no external resource."""
    facts = "".join(f"<li><b>{html.escape(name)}</b>: {_html_inline(str(value))}</li>" for name, value in doc.facts)
    sections = "".join(
        f"<section{f' id={chr(34)}{html.escape(s.id)}{chr(34)}' if s.id else ''}><h2>{html.escape(s.title)}</h2>"
        + "".join(_html_block(b) for b in s.blocks)
        + "</section>"
        for s in doc.sections
    )
    return (
        f'<!DOCTYPE html>\n<html lang="zh-Hans">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(doc.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{_html_inline(doc.title)}</h1>\n<ul class="facts">{facts}</ul>\n{sections}\n</body>\n</html>\n'
    )


def write_report_files(doc: Page, data: dict[str, Any], output_dir: str | Path) -> list[Path]:
    """`report.json` (data), `report.md` (with the plots as PNG files beside it) and `report.html`."""
    output_dir = Path(output_dir)
    paths = [
        atomic_write_json(output_dir / "report.json", data),
        atomic_write_text(output_dir / "report.md", render_markdown(doc)),
        atomic_write_text(output_dir / "report.html", render_html(doc)),
    ]
    paths += [atomic_write_bytes(output_dir / image.file_name, image.png) for image in doc.images()]
    return paths


# --- evaluation reports --------------------------------------------------------------------------

CATEGORY_NAMES = {
    "correct": "correct",
    "boundary": "boundary error",
    "label": "label error",
    "label_boundary": "label + boundary error",
    "missed": "missed",
    "spurious": "spurious",
}


def _interval(iv: dict) -> str:
    return f"[{iv['low']:.3f}, {iv['high']:.3f}]"


def _facts(context: dict[str, Any]) -> list[tuple[str, str]]:
    facts = []
    for key in ("model", "source", "split", "documents", "command", "created"):
        if context.get(key) not in (None, ""):
            facts.append((key, f"`{context[key]}`" if key == "command" else str(context[key])))
    for item in context.get("gold_files", []):
        facts.append(("gold file", f"{item['path']} (sha256 `{item['sha256']}`)"))
    if context.get("predictions_without_gold"):
        facts.append(("not scored", describe_unscored(context["predictions_without_gold"])))
    return facts


def model_card_section(card: dict[str, Any] | None) -> Section:
    """The model card's facts: base model, data files and sha256, training time, config."""
    if not card:
        return Section(
            "Model card", [Paragraph("No model card: these predictions were read from a file.")], id="model-card"
        )
    training, data = card.get("training", {}), card.get("data", {})
    rows: list[list[Any]] = [
        ["version", card.get("version")],
        ["created", card.get("created")],
        ["base model", f"`{card.get('base_model')}`"],
        ["config", card.get("config_file") or card.get("config_name")],
        ["git commit", card.get("git_commit")],
        ["parameters", f"{card.get('parameters', 0):,}"],
        [
            "training time",
            f"{training.get('seconds')} s on {training.get('threads')} thread(s), "
            f"peak memory {training.get('peak_memory_mb')} MB",
        ],
        [
            "training documents",
            f"{len(data.get('train_documents', []))} ({data.get('train_characters', 0):,} "
            f"characters, {data.get('train_windows')} windows)",
        ],
        ["dev documents", ", ".join(data.get("dev_documents", [])) or "none"],
    ]
    files = [[f["path"], f"`{f['sha256']}`"] for f in data.get("annotation_files", [])]
    return Section(
        "Model card",
        [
            Table(["fact", "value"], rows, id="model-card-facts", numeric=False),
            Table(["training data file", "sha256"], files, id="model-card-data", numeric=False),
            Details("training config", [Code(json.dumps(card.get("config", {}), ensure_ascii=False, indent=2))]),
        ],
        id="model-card",
    )


def evaluation_plots(data: dict[str, Any]) -> list[Image]:
    from . import plots

    names = list(data["labels"]) + ["micro avg", "macro avg"]
    rows = [data["per_label"][n] if n in data["per_label"] else data[n.split()[0]] for n in names]
    intervals = [data["intervals"][n]["f1"] for n in names]
    images = [
        Image(
            "per_label_f1.png",
            plots.f1_plot(names, [r["f1"] for r in rows], [(iv["low"], iv["high"]) for iv in intervals]),
            "Strict F1 per label with 95% bootstrap intervals",
            id="plot-f1",
        )
    ]
    if data["threshold_curve"]:
        images.append(
            Image(
                "threshold.png",
                plots.threshold_plot(data["threshold_curve"]),
                "Precision and recall against the entity score threshold",
                id="plot-threshold",
            )
        )
    return images


def error_rows(items: Sequence[dict]) -> list[list[Any]]:
    return [
        [
            e["doc_id"],
            "false negative" if e["kind"] == "false_negative" else "false positive",
            CATEGORY_NAMES[e["category"]],
            f"{e['start']}:{e['end']}",
            f"{e['left']}【{e['text']}】{e['right']}",
            e["other"],
            e["score"],
        ]
        for e in items
    ]


def evaluation_page(report: EvaluationReport | dict[str, Any]) -> Page:
    data = report.to_dict() if isinstance(report, EvaluationReport) else report
    labels, boot = data["labels"], data["bootstrap"]
    names = list(labels) + ["micro avg", "macro avg"]
    strict_rows = []
    for name in names:
        s = data["per_label"][name] if name in data["per_label"] else data[name.split()[0]]
        iv = data["intervals"][name]
        strict_rows.append(
            [
                name,
                s["precision"],
                _interval(iv["precision"]),
                s["recall"],
                _interval(iv["recall"]),
                s["f1"],
                _interval(iv["f1"]),
                s["support"],
                s["predicted"],
            ]
        )
    pct = f"{boot['confidence'] * 100:g}%"
    strict = Section(
        "Strict entity scores",
        [
            Paragraph(
                f"seqeval strict mode, IOB2 scheme: an entity counts only with exact offsets and label. "
                f"Intervals: {pct} percentile bootstrap over documents ({boot['samples']} samples, seed "
                f"{boot['seed']}); macro averages the labels present in gold or predictions."
                + (f" Warning: {boot['note']}." if boot.get("note") else "")
            ),
            Table(
                [
                    "label",
                    "precision",
                    f"P {pct} CI",
                    "recall",
                    f"R {pct} CI",
                    "F1",
                    f"F1 {pct} CI",
                    "gold",
                    "predicted",
                ],
                strict_rows,
                id="strict-scores",
            ),
            Paragraph(f"Diagnostic: seqeval default (lenient) mode micro F1 = {data['default_mode_micro_f1']:.3f}."),
        ],
        id="strict",
    )
    partial = data["partial"]
    schema_rows = [
        [schema]
        + [
            partial[schema]["overall"][k]
            for k in (
                "correct",
                "incorrect",
                "partial",
                "missed",
                "spurious",
                "possible",
                "actual",
                "precision",
                "recall",
                "f1",
            )
        ]
        for schema in partial
    ]
    by_label = [[label] + [partial[schema][label]["f1"] for schema in partial] for label in labels]
    partial_section = Section(
        "Partial match (SemEval-2013)",
        [
            Paragraph(
                "strict: exact offsets and label; exact: exact offsets, any label; partial: overlapping offsets "
                "(half credit), any label; type: overlapping offsets and the right label. COR correct, INC "
                "incorrect, PAR partial, MIS missed, SPU spurious; POS = gold entities, ACT = predictions. "
                "Per label, a matched pair counts under its gold label, a spurious prediction under its own, so "
                "the per-label strict F1 below can differ from the seqeval table above, which counts a label "
                "error as a false positive of the predicted label."
            ),
            Table(
                ["schema", "COR", "INC", "PAR", "MIS", "SPU", "POS", "ACT", "precision", "recall", "F1"],
                schema_rows,
                id="partial-scores",
            ),
            Table(["label"] + [f"F1 {schema}" for schema in partial], by_label, id="partial-by-label"),
        ],
        id="partial",
    )
    counts = data["error_counts"]
    categories = list(CATEGORY_NAMES)
    errors_section = Section(
        "Error types and confusion",
        [
            Paragraph(
                "Each gold entity is paired with at most one prediction (same offsets first, then largest "
                "overlap). Boundary errors (overlap, right label) are counted apart from label errors (same "
                "offsets, wrong label). Rows: the gold label (spurious: the predicted label)."
            ),
            Table(
                ["label"] + [CATEGORY_NAMES[c] for c in categories],
                [[name] + [counts[name][c] for c in categories] for name in counts],
                id="error-types",
            ),
            Paragraph(
                "Confusion of labels: rows gold, columns predicted, over matched pairs whether their offsets "
                "agree or only overlap; (none) collects missed and spurious entities."
            ),
            Table(
                ["gold \\ predicted"] + list(data["confusion"]),
                [[row] + list(cells.values()) for row, cells in data["confusion"].items()],
                id="confusion",
            ),
        ],
        id="errors-by-type",
    )
    plot_blocks: list[Block] = list(evaluation_plots(data))
    if not data["threshold_curve"]:
        plot_blocks.append(Paragraph("No threshold curve: the predictions carry no entity scores."))
    error_blocks: list[Block] = [
        Paragraph(
            "Strict false negatives (gold entities not predicted exactly) and false positives (predictions not exactly "
            "gold), grouped by the entity's own label, with 20 characters of context; the entity is in 【】."
        )
    ]
    for label, items in data["errors"].items():
        fn = sum(e["kind"] == "false_negative" for e in items)
        error_blocks.append(
            Details(
                f"{label}: {fn} false negative(s), {len(items) - fn} false positive(s)",
                [
                    Table(
                        ["doc", "kind", "error", "offsets", "context", "paired with", "score"],
                        error_rows(items),
                        id=f"errors-{label}",
                        numeric=False,
                    )
                ],
            )
        )
    return Page(
        f"Evaluation of `{data['context'].get('model', '?')}`",
        _facts(data["context"]) + [("documents scored", str(data["documents"]))],
        [
            strict,
            partial_section,
            errors_section,
            Section("Plots", plot_blocks, id="plots"),
            Section("Error list", error_blocks, id="error-list"),
            model_card_section(data["context"].get("model_card")),
        ],
    )


def write_evaluation(report: EvaluationReport, output_dir: str | Path) -> list[Path]:
    """`report.json`, `report.md` (+ plot PNGs) and self-contained `report.html` in `output_dir`."""
    data = report.to_dict()
    return write_report_files(evaluation_page(data), data, output_dir)


# --- comparison reports --------------------------------------------------------------------------


def comparison_page(data: dict[str, Any]) -> Page:
    from . import plots

    names = [s["name"] for s in data["systems"]]
    baseline, others = names[0], names[1:]
    rows_names = list(data["labels"]) + ["micro avg", "macro avg"]
    boot = data["bootstrap"]
    pct = f"{boot['confidence'] * 100:g}%"

    side = []
    for row in rows_names:
        cells = [row]
        for name in names:
            s = data["scores"][name][row]
            cells += [s["precision"], s["recall"], s["f1"], _interval(s["intervals"]["f1"])]
        side.append(cells + [data["scores"][baseline][row]["support"]])
    side_headers = ["label"] + [f"{n} {m}" for n in names for m in ("P", "R", "F1", f"F1 {pct} CI")] + ["gold"]

    delta_tables: list[Block] = []
    for name in others:
        rows = []
        for row in rows_names:
            cells = [row]
            for metric in ("precision", "recall", "f1"):
                d = data["deltas"][name][row][metric]
                cells += [
                    f"{d['delta']:+.3f}",
                    f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                    "yes" if d["excludes_zero"] else "no",
                ]
            rows.append(cells)
        delta_tables += [
            Paragraph(f"`{name}` minus `{baseline}`:"),
            Table(
                [
                    "label",
                    "ΔP",
                    f"ΔP {pct} CI",
                    "excludes 0",
                    "ΔR",
                    f"ΔR {pct} CI",
                    "excludes 0",
                    "ΔF1",
                    f"ΔF1 {pct} CI",
                    "excludes 0",
                ],
                rows,
                id=f"delta-{name}",
            ),
        ]

    doc_rows = [
        [d["doc_id"], d["disagreements"], d["gold"]]
        + [f"{d[n]['predicted']} / {d[n]['true_positives']} / {d[n]['f1']:.3f}" for n in names]
        for d in data["documents"]
    ]
    entity_rows = [
        [
            e["doc_id"],
            e["label"],
            f"{e['start']}:{e['end']}",
            f"{e['left']}【{e['text']}】{e['right']}",
            ", ".join(e["predicted_by"]),
            ", ".join(n for n in names if n not in e["predicted_by"]),
            "yes" if e["gold"] else "no",
        ]
        for e in data["disagreements"]
    ]

    f1_by_system = {n: [data["scores"][n][r]["f1"] for r in rows_names] for n in names}
    intervals = {
        n: [
            (data["scores"][n][r]["intervals"]["f1"]["low"], data["scores"][n][r]["intervals"]["f1"]["high"])
            for r in rows_names
        ]
        for n in names
    }
    deltas = {
        n: [
            (data["deltas"][n][r]["f1"]["delta"], data["deltas"][n][r]["f1"]["low"], data["deltas"][n][r]["f1"]["high"])
            for r in rows_names
        ]
        for n in others
    }
    images: list[Block] = [
        Image(
            "compare_f1.png",
            plots.comparison_plot(rows_names, f1_by_system, intervals),
            "F1 per label for each version",
            id="plot-compare",
        ),
        Image(
            "compare_delta.png",
            plots.delta_plot(rows_names, deltas),
            "F1 difference from the baseline with paired intervals",
            id="plot-delta",
        ),
    ]

    system_rows = [
        [
            s["name"],
            s["kind"],
            s["path"],
            s.get("base_model") or "",
            s.get("created") or "",
            data["default_mode_micro_f1"][s["name"]],
        ]
        for s in data["systems"]
    ]
    facts = _facts(data["context"]) + [("documents", str(len(data["doc_ids"]))), ("baseline", baseline)]
    return Page(
        f"Comparison: {' vs '.join(names)}",
        facts,
        [
            Section(
                "Systems",
                [
                    Table(
                        ["system", "kind", "path", "base model", "created", "default-mode micro F1 (diagnostic)"],
                        system_rows,
                        id="systems",
                    )
                ],
                id="systems",
            ),
            Section(
                "Scores side by side",
                [
                    Paragraph(
                        f"seqeval strict mode, IOB2. Intervals: {pct} percentile bootstrap over documents "
                        f"({boot['samples']} samples, seed {boot['seed']})."
                        + (f" Warning: {boot['note']}." if boot.get("note") else "")
                    ),
                    Table(side_headers, side, id="side-by-side"),
                ],
                id="side",
            ),
            Section(
                "Differences from the baseline",
                [
                    Paragraph(
                        f"Paired bootstrap: every sample draws the same documents for both versions, and the interval "
                        f'is that of the differences. "excludes 0" = the {pct} interval lies entirely above or '
                        f"below zero."
                    ),
                    *delta_tables,
                ],
                id="deltas",
            ),
            Section("Plots", images, id="plots"),
            Section(
                "Where the versions disagree",
                [
                    Paragraph(
                        f"{len(data['documents'])} of {len(data['doc_ids'])} documents, "
                        f"{len(data['disagreements'])} entities predicted by some versions and not others. Per "
                        f"version: predicted / exactly right / strict F1 on that document."
                    ),
                    Table(["doc", "entities in dispute", "gold"] + names, doc_rows, id="disagreeing-documents"),
                    Details(
                        f"{len(entity_rows)} disputed entities (context ±20 characters)",
                        [
                            Table(
                                ["doc", "label", "offsets", "context", "predicted by", "not by", "gold"],
                                entity_rows,
                                id="disagreeing-entities",
                                numeric=False,
                            )
                        ],
                    ),
                ],
                id="disagreements",
            ),
        ],
    )


def write_comparison(comparison, output_dir: str | Path) -> list[Path]:
    """`report.json`, `report.md` (+ plot PNGs) and self-contained `report.html` in `output_dir`."""
    data = comparison.to_dict()
    return write_report_files(comparison_page(data), data, output_dir)
