"""The model card of a trained version, as Markdown (the card's facts are `model_card.json`)."""

from __future__ import annotations

from typing import Any

from .. import markdown
from ..scoring import scores_table


def model_card_markdown(card: dict[str, Any]) -> str:
    data, training = card["data"], card["training"]
    lines = [
        f"# Model card: {card['version']}",
        "",
        "Chinese policy-document NER (character-level IOB2 token classifier) trained by policy-ner.",
        "",
        f"- **created**: {card['created']}",
        f"- **base model**: `{card['base_model']}`",
        f"- **labels**: {', '.join(card['labels'])}",
        f"- **parameters**: {card['parameters']:,}; vocabulary {card['vocab_size']:,} tokens",
        f"- **git commit**: {card['git_commit']}",
        f"- **training time**: {training['seconds']} s on {training['threads']} thread(s); "
        f"peak memory {training['peak_memory_mb']} MB",
        "",
        "## Data",
        "",
        markdown.table(
            ["annotation file", "sha256"], [[f["path"], f"`{f['sha256']}`"] for f in data["annotation_files"]]
        ),
        "",
        f"{len(data['train_documents'])} training documents ({data['train_characters']:,} characters, "
        f"{data['train_windows']} windows); {len(data['dev_documents'])} dev documents: "
        f"{', '.join(data['dev_documents']) or 'none'}.",
        "",
        "## Dev metrics",
        "",
    ]
    if card.get("dev_metrics"):
        lines += [
            "Entity-level, seqeval strict mode, IOB2:",
            "",
            scores_table(card["dev_metrics"]),
            "",
            f"seqeval default-mode micro F1: {card['dev_metrics']['default_mode_micro_f1']:.3f}",
        ]
    else:
        lines.append("No dev documents were held out.")
    lines += [
        "",
        "## Intended use and limits",
        "",
        "Finds policy targets, named organizations and subsidy amounts in Chinese policy and government "
        "texts, following `annotations/ANNOTATION_GUIDELINES.md`. Trained on a small corpus: check "
        "the dev figures above and the evaluation reports in `eval/` before relying on it.",
        "",
    ]
    return "\n".join(lines)
