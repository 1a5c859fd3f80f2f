"""Human-readable renderings: evaluation reports (JSON + Markdown) and model cards (Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .evaluation import EvaluationResult, Scores
from .files import atomic_write_json, atomic_write_text


def scores_table(result: EvaluationResult | dict[str, Any]) -> str:
    """Markdown table: one row per label, then micro and macro averages."""
    data = result.to_dict() if isinstance(result, EvaluationResult) else result
    rows = list(data["per_label"].items()) + [("micro avg", data["micro"]), ("macro avg", data["macro"])]
    lines = ["| label | precision | recall | F1 | gold | predicted |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in rows:
        s = s.__dict__ if isinstance(s, Scores) else s
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
                     f"{s['support']} | {s['predicted']} |")
    return "\n".join(lines)


def evaluation_markdown(result: EvaluationResult, context: dict[str, Any]) -> str:
    lines = [f"# Evaluation of `{context.get('model', '?')}`", ""]
    for key in ("model", "base_model", "gold_files", "split", "command"):
        if context.get(key) is not None:
            value = context[key]
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"- **{key.replace('_', ' ')}**: {value}")
    lines += [f"- **documents**: {result.documents}", "",
              "Entity-level scores, seqeval strict mode, IOB2 scheme (exact span and label):", "",
              scores_table(result), "",
              f"Diagnostic: seqeval default (lenient) mode micro F1 = {result.default_mode_micro_f1:.3f}.", ""]
    return "\n".join(lines)


def write_evaluation(result: EvaluationResult, output_dir: str | Path, context: dict[str, Any]) -> list[Path]:
    output_dir = Path(output_dir)
    report = {"context": context, **result.to_dict()}
    return [atomic_write_json(output_dir / "report.json", report),
            atomic_write_text(output_dir / "report.md", evaluation_markdown(result, context))]


def model_card_markdown(card: dict[str, Any]) -> str:
    data, training = card["data"], card["training"]
    lines = [
        f"# Model card: {card['version']}", "",
        "Chinese policy-document NER (character-level IOB2 token classifier) trained by policy-ner.", "",
        f"- **created**: {card['created']}",
        f"- **base model**: `{card['base_model']}`",
        f"- **labels**: {', '.join(card['labels'])}",
        f"- **parameters**: {card['parameters']:,}; vocabulary {card['vocab_size']:,} tokens",
        f"- **git commit**: {card['git_commit']}",
        f"- **training time**: {training['seconds']} s on {training['threads']} thread(s); "
        f"peak memory {training['peak_memory_mb']} MB",
        "", "## Data", "",
        "| annotation file | sha256 |", "|---|---|",
        *[f"| {f['path']} | `{f['sha256']}` |" for f in data["annotation_files"]],
        "",
        f"{len(data['train_documents'])} training documents ({data['train_characters']:,} characters, "
        f"{data['train_windows']} windows); {len(data['dev_documents'])} dev documents: "
        f"{', '.join(data['dev_documents']) or 'none'}.",
        "", "## Dev metrics", "",
    ]
    if card.get("dev_metrics"):
        lines += ["Entity-level, seqeval strict mode, IOB2:", "", scores_table(card["dev_metrics"]), "",
                  f"seqeval default-mode micro F1: {card['dev_metrics']['default_mode_micro_f1']:.3f}"]
    else:
        lines.append("No dev documents were held out.")
    lines += ["", "## Intended use and limits", "",
              "Finds policy targets, named organizations and subsidy amounts in Chinese policy and government "
              "texts, following `annotations/ANNOTATION_GUIDELINES.md`. Trained on a small corpus: check "
              "the dev figures above and the evaluation reports in `eval/` before relying on it.", ""]
    return "\n".join(lines)
