"""The model card of a trained version, as Markdown (the card's facts are `model_card.json`)."""

from __future__ import annotations

from typing import Any

import yaml

from .. import markdown
from ..scoring import scores_table


def hub_metadata(card: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face hub's card metadata (the YAML block a model README starts with)."""
    metadata: dict[str, Any] = {
        "language": ["zh"],
        "license": "apache-2.0",
        "library_name": "transformers",
        "pipeline_tag": "token-classification",
        "tags": [
            "token-classification",
            "ner",
            "chinese",
            "policy-ner",
            *(["crf"] if card["config"]["model"]["crf"] else []),
        ],
    }
    if card["base_model"] != "scratch":
        metadata["base_model"] = card["base_model"]
    dev = card.get("dev_metrics")
    if dev:
        metadata["model-index"] = [
            {
                "name": card["version"],
                "results": [
                    {
                        "task": {"type": "token-classification", "name": "Named entity recognition"},
                        "dataset": {
                            "type": "policy-ner-dev",
                            "name": f"policy-ner dev split ({len(card['data']['dev_documents'])} documents)",
                        },
                        "metrics": [
                            {"type": "f1", "value": round(dev["micro"]["f1"], 4), "name": "strict micro F1"},
                            {
                                "type": "precision",
                                "value": round(dev["micro"]["precision"], 4),
                                "name": "strict micro precision",
                            },
                            {
                                "type": "recall",
                                "value": round(dev["micro"]["recall"], 4),
                                "name": "strict micro recall",
                            },
                        ],
                    }
                ],
            }
        ]
    return metadata


def model_card_markdown(card: dict[str, Any]) -> str:
    data, training = card["data"], card["training"]
    front_matter = yaml.safe_dump(hub_metadata(card), allow_unicode=True, sort_keys=False)
    lines = [
        f"---\n{front_matter}---",
        "",
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
        "## Loading it without policy-ner",
        "",
        "The network's code is saved beside the weights (`modeling_policy_ner.py`, named by `auto_map` in "
        "`config.json`), so plain transformers loads it:",
        "",
        "```python",
        "from transformers import AutoModelForTokenClassification, pipeline",
        'model = AutoModelForTokenClassification.from_pretrained("<this folder>", trust_remote_code=True)',
        'ner = pipeline("token-classification", model="<this folder>", trust_remote_code=True, aggregation_strategy="simple")',
        "```",
        "",
        "Such a client runs the network alone: no feature channels (jieba, LAC, money, gazetteer: token type 0 "
        "for every character), no CRF decoding (the emission scores' argmax), and the tokenizer's own word "
        "splitting (a digit run or Latin word it does not know becomes one [UNK]). `policy-ner predict` "
        "computes all three; its figures above are not a plain client's.",
        "",
    ]
    return "\n".join(lines)
