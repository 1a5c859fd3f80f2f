"""Reading Label Studio exports: real-server shapes are accepted, every kind of bad input is
reported with file, task id, doc id and span."""

from __future__ import annotations

import copy

import pytest

from conftest import CORPUS_EXPORT, LABELS, corpus_tasks, write_json
from policy_ner.cli import main
from policy_ner.labelstudio.exports import AnnotationError, compute_stats, load_documents, read_exports
from policy_ner.types import Span


def result(start, end, text, label, rid="r1"):
    return {
        "id": rid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "text": text, "labels": [label]},
    }


def task(text, results, task_id=1, doc_id="doc-a", **extra):
    base = {
        "id": task_id,
        "data": {"text": text, "doc_id": doc_id},
        "annotations": [
            {"id": 100 + task_id, "was_cancelled": False, "result": results, "updated_at": "2026-01-01T00:00:00Z"}
        ],
        "predictions": [],
    }
    base.update(extra)
    return base


TEXT = "对台资企业给予300万元补贴，由区委台办负责。"


def test_corpus_export_reads_with_the_published_counts():
    docs = load_documents([CORPUS_EXPORT], LABELS)
    stats = compute_stats(docs, LABELS)
    assert stats.documents == 25
    assert stats.spans_per_label == {"ORG": 117, "POLICY_TARGET": 373, "SUBSIDY_AMOUNT": 132}
    first = next(d for d in docs if d.doc_id == "001_ns_tech_p1")
    assert first.mentions()[0] == ("ORG", "国务院")


def test_real_server_shapes_are_accepted(tmp_path):
    good = [result(1, 5, "台资企业", "POLICY_TARGET", "a"), result(7, 11, "300万", "SUBSIDY_AMOUNT", "b")]
    missing_text = copy.deepcopy(good)
    del missing_text[0]["value"]["text"]
    tasks = [
        # several annotations: the cancelled one is ignored, the later one wins
        {
            "id": 1,
            "data": {"text": TEXT, "doc_id": "multi", "extra_field": 1},
            "meta": {"x": 1},
            "annotations": [
                {
                    "id": 11,
                    "was_cancelled": False,
                    "updated_at": "2026-01-01T00:00:00Z",
                    "result": [result(1, 5, "台资企业", "POLICY_TARGET")],
                },
                {"id": 12, "was_cancelled": False, "updated_at": "2026-02-01T00:00:00Z", "result": good},
                {"id": 13, "was_cancelled": True, "updated_at": "2026-03-01T00:00:00Z", "result": []},
            ],
            "predictions": [{"id": 5, "result": [result(0, 2, "对台", "ORG")]}],
        },
        # predictions only: not gold, reported as unannotated, not an error
        {"id": 2, "data": {"text": TEXT, "doc_id": "pred-only"}, "annotations": [], "predictions": [{"result": good}]},
        # value.text missing (Label Studio omits it for some result sources) and a non-span result
        task(
            TEXT,
            missing_text
            + [{"id": "c", "type": "choices", "from_name": "x", "to_name": "text", "value": {"choices": ["ok"]}}],
            task_id=3,
            doc_id="no-text",
        ),
    ]
    reading = read_exports([write_json(tmp_path / "export.json", tasks)], LABELS)
    assert reading.issues == []
    by_id = {d.doc_id: d for d in reading.documents}
    assert set(by_id) == {"multi", "no-text"}
    assert by_id["multi"].mentions() == [("POLICY_TARGET", "台资企业"), ("SUBSIDY_AMOUNT", "300万")]
    assert by_id["no-text"].spans == (Span(1, 5, "POLICY_TARGET"), Span(7, 11, "SUBSIDY_AMOUNT"))
    assert reading.unannotated_tasks == [f"{tmp_path / 'export.json'}#task=2"]


@pytest.mark.parametrize(
    "bad_result, message",
    [
        (result(40, 45, "xxxxx", "ORG"), "offsets out of range"),
        (result(3, 1, "", "ORG"), "offsets out of range"),
        (result(1, 5, "台资企", "POLICY_TARGET"), "differs from the task text"),
        (result(1, 5, "台资企业", "COUNTRY"), "unknown label 'COUNTRY'"),
        (result(14, 18, "，由区委", "ORG"), "starts or ends with punctuation"),
        (
            result(16, 21, "区委台办负", "ORG")
            | {"value": {"start": 16, "end": 21, "text": "区委台办负", "labels": ["ORG", "POLICY_TARGET"]}},
            "exactly one label",
        ),
        (result(16, 20, "区委台办", "ORG"), None),
    ],
)
def test_each_bad_span_is_reported_with_its_location(tmp_path, bad_result, message):
    path = write_json(tmp_path / "bad.json", [task(TEXT, [bad_result], task_id=77, doc_id="doc-77")])
    reading = read_exports([path], LABELS)
    if message is None:
        assert reading.issues == []
        return
    assert len(reading.issues) == 1
    text = str(reading.issues[0])
    assert str(path) in text and "task 77" in text and "doc doc-77" in text and message in text
    assert f"{bad_result['value']['start']}:{bad_result['value']['end']}" in text


def test_overlapping_and_nested_spans_are_errors(tmp_path):
    spans = [
        result(0, 5, "对台资企业", "POLICY_TARGET", "a"),
        result(1, 5, "台资企业", "POLICY_TARGET", "b"),
        result(16, 20, "区委台办", "ORG", "c"),
        result(18, 20, "台办", "ORG", "d"),
    ]
    path = write_json(tmp_path / "overlap.json", [task(TEXT, spans, task_id=9, doc_id="ov")])
    with pytest.raises(AnnotationError) as info:
        load_documents([path], LABELS)
    messages = [i.message for i in info.value.issues]
    assert len(messages) == 2 and all("overlapping" in m for m in messages)
    assert "'区委台办'" in messages[1] and "'台办'" in messages[1]


def test_whitespace_around_a_span_is_an_error(tmp_path):
    text = "支持 台湾青年 就业"
    path = write_json(tmp_path / "ws.json", [task(text, [result(2, 8, " 台湾青年 ", "POLICY_TARGET")])])
    (issue,) = read_exports([path], LABELS).issues
    assert "whitespace" in issue.message and "2:8" in issue.span


def test_empty_text_and_missing_text_are_errors(tmp_path):
    tasks = [
        task("   ", [], task_id=1, doc_id="empty"),
        {"id": 2, "data": {"doc_id": "no-text"}, "annotations": [{"id": 3, "result": []}]},
    ]
    issues = read_exports([write_json(tmp_path / "e.json", tasks)], LABELS).issues
    assert [(i.task_id, i.doc_id) for i in issues] == [(1, "empty"), (2, "no-text")]
    assert "empty" in issues[0].message and "data.text" in issues[1].message


def test_non_bmp_characters_and_full_width_punctuation_use_python_str_offsets(tmp_path):
    text = "𠮷野家😀为“台湾青年”提供5000元补贴，（区委台办）。"
    start = text.index("台湾青年")
    money = text.index("5000元")
    org = text.index("区委台办")
    path = write_json(
        tmp_path / "bmp.json",
        [
            task(
                text,
                [
                    result(start, start + 4, "台湾青年", "POLICY_TARGET", "a"),
                    result(money, money + 5, "5000元", "SUBSIDY_AMOUNT", "b"),
                    result(org, org + 4, "区委台办", "ORG", "c"),
                ],
            )
        ],
    )
    (doc,) = load_documents([path], LABELS)
    assert start == 6  # 𠮷 and 😀 are one str index each
    assert doc.mentions() == [("POLICY_TARGET", "台湾青年"), ("SUBSIDY_AMOUNT", "5000元"), ("ORG", "区委台办")]


def test_later_file_replaces_a_document_and_says_so(tmp_path):
    first = write_json(tmp_path / "v1.json", [task(TEXT, [result(1, 5, "台资企业", "POLICY_TARGET")])])
    second = write_json(tmp_path / "v2.json", [task(TEXT, [result(16, 20, "区委台办", "ORG")], task_id=5)])
    reading = read_exports([first, second], LABELS)
    (doc,) = reading.documents
    assert doc.mentions() == [("ORG", "区委台办")]
    assert len(reading.overridden) == 1 and "v1.json" in reading.overridden[0]


def test_validate_and_stats_commands(tmp_path, capsys):
    assert main(["annotations", "validate", str(CORPUS_EXPORT)]) == 0
    assert "OK: 25 documents, 622 spans" in capsys.readouterr().out
    bad = copy.deepcopy(corpus_tasks()[:1])
    bad[0]["annotations"][0]["result"][0]["value"]["end"] += 1
    path = write_json(tmp_path / "bad.json", bad)
    assert main(["annotations", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "task 1001 (doc 001_ns_tech_p1)" in out and "differs from the task text" in out
    assert main(["annotations", "stats", str(CORPUS_EXPORT)]) == 0
    out = capsys.readouterr().out
    assert "POLICY_TARGET" in out and "373" in out and "035_gwr_yunnan" in out
