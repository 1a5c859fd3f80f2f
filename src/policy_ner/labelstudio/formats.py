"""Label Studio formats: the labelling config generated from the label set, and tasks built from
documents (gold annotations or model predictions), in the JSON shape Label Studio imports and exports.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from ..types import Document, Entity

FROM_NAME = "label"
TO_NAME = "text"

# Distinct, readable highlight colours; labels beyond the palette cycle through it.
_PALETTE = ["#f4a261", "#2a9d8f", "#e9c46a", "#8ab17d", "#e76f51", "#90caf9", "#ce93d8", "#bcaaa4"]


def labeling_config(labels: Sequence[str]) -> str:
    """The `<View>` XML for span labelling of `data.text` with the given labels."""
    label_lines = "\n".join(
        f"    <Label value={quoteattr(label)} background={quoteattr(_PALETTE[i % len(_PALETTE)])}/>"
        for i, label in enumerate(labels)
    )
    return (
        "<View>\n"
        '  <Header value="$doc_id"/>\n'
        f'  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n'
        f"{label_lines}\n"
        "  </Labels>\n"
        f'  <Text name="{TO_NAME}" value="$text" granularity="symbol"/>\n'
        "</View>\n"
    )


@dataclass(frozen=True)
class LabelsTag:
    """The `<Labels>` control of a labelling config: its name, the tag it labels and its label values."""

    from_name: str
    to_name: str
    labels: tuple[str, ...]


def labels_tags(config_xml: str) -> list[LabelsTag]:
    """Every `<Labels>` control in a labelling config (a project made by hand may differ from ours)."""
    root = ET.fromstring(config_xml)
    return [
        LabelsTag(
            tag.get("name", ""), tag.get("toName", ""), tuple(label.get("value", "") for label in tag.iter("Label"))
        )
        for tag in root.iter("Labels")
    ]


def span_result(
    result_id: str, start: int, end: int, text: str, label: str, score: float | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": result_id,
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "labels",
        "value": {"start": start, "end": end, "text": text, "labels": [label]},
    }
    if score is not None:
        result["score"] = round(float(score), 4)
    return result


def document_results(doc: Document) -> list[dict[str, Any]]:
    return [
        span_result(f"{doc.doc_id}-{i}", s.start, s.end, s.text_in(doc.text), s.label) for i, s in enumerate(doc.spans)
    ]


def task_data(doc_id: str, text: str) -> dict[str, str]:
    return {"text": text, "doc_id": doc_id}


def prediction(
    doc_id: str, entities: Iterable[Entity], model_version: str, score: float | None = None
) -> dict[str, Any]:
    """A pre-annotation: the model's spans, each with its score, and one score for the whole task
    (left out when `score` is None)."""
    result: dict[str, Any] = {"model_version": model_version}
    if score is not None:
        result["score"] = round(float(score), 4)
    result["result"] = [
        span_result(f"{doc_id}-{i}", m.start, m.end, m.text, m.label, m.score) for i, m in enumerate(entities)
    ]
    return result


def predicted_task(doc_id: str, text: str, task_prediction: dict[str, Any] | None = None) -> dict[str, Any]:
    """A task to import, with the model's pre-annotation when there is one."""
    task: dict[str, Any] = {"data": task_data(doc_id, text)}
    if task_prediction is not None:
        task["predictions"] = [task_prediction]
    return task


def annotated_task(
    doc: Document,
    task_id: int,
    annotation_id: int,
    *,
    project: int | None = None,
    completed_by: int = 1,
    timestamp: str = "",
) -> dict[str, Any]:
    """A task as it appears in a Label Studio JSON export, with one completed annotation."""
    results = [dict(r, origin="manual") for r in document_results(doc)]
    return {
        "id": task_id,
        "data": task_data(doc.doc_id, doc.text),
        "annotations": [
            {
                "id": annotation_id,
                "was_cancelled": False,
                "completed_by": completed_by,
                "ground_truth": False,
                "task": task_id,
                "project": project,
                "created_at": timestamp,
                "updated_at": timestamp,
                "result_count": len(results),
                "result": results,
            }
        ],
        "predictions": [],
        "meta": {},
        "project": project,
    }


def export_tasks(
    documents: Iterable[Document],
    *,
    first_task_id: int = 1,
    first_annotation_id: int = 1,
    project: int | None = None,
    timestamp: str = "",
) -> list[dict[str, Any]]:
    return [
        annotated_task(doc, first_task_id + i, first_annotation_id + i, project=project, timestamp=timestamp)
        for i, doc in enumerate(documents)
    ]
