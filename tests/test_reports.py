"""`evaluate` reports, `compare` and `models list` end to end, on the session's tiny model."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import TINY_DEV_DOC
from policy_ner.cli import main
from policy_ner.evaluate import metrics
from policy_ner.model.registry import read_model_card

pytestmark = pytest.mark.slow


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_evaluate_writes_json_markdown_and_self_contained_html(tiny_report, tiny_model, capsys):
    report = json.loads((tiny_report / "report.json").read_text())
    assert report["documents"] == 5 and report["bootstrap"] == {
        "samples": 200,
        "seed": 3,
        "confidence": 0.95,
        "unit": "document",
        "note": metrics.bootstrap_note(5),
    }
    micro, interval = report["micro"], report["intervals"]["micro avg"]["f1"]
    assert interval["low"] <= micro["f1"] <= interval["high"] and interval["low"] < interval["high"]
    assert set(report["partial"]) == {"strict", "exact", "partial", "type"}
    assert report["partial"]["strict"]["overall"]["f1"] == micro["f1"]
    assert report["partial"]["strict"]["overall"]["possible"] == micro["support"]
    counts = report["error_counts"]["total"]
    assert (
        counts["correct"] + counts["boundary"] + counts["label"] + counts["label_boundary"] + counts["missed"]
        == micro["support"]
    )
    fn = sum(e["kind"] == "false_negative" for items in report["errors"].values() for e in items)
    assert fn == micro["support"] - counts["correct"]
    assert (
        report["threshold_curve"][0]["threshold"] == 0.0
        and report["threshold_curve"][0]["predicted"] == micro["predicted"]
    )
    card = read_model_card(tiny_model)
    context = report["context"]
    assert context["model"] == "tiny-v1" and context["model_card"]["base_model"] == "scratch"
    assert context["model_card"]["data"]["annotation_files"] == card["data"]["annotation_files"]
    assert len(context["gold_files"][0]["sha256"]) == 64

    markdown = (tiny_report / "report.md").read_text()
    for heading in (
        "## Strict entity scores",
        "## Partial match (SemEval-2013)",
        "## Error types and confusion",
        "## Plots",
        "## Error list",
        "## Model card",
        "![Strict F1 per label",
    ):
        assert heading in markdown
    assert card["data"]["annotation_files"][0]["sha256"] in markdown and "training time" in markdown
    assert (tiny_report / "per_label_f1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_report / "threshold.png").is_file()

    page = (tiny_report / "report.html").read_text()
    for table in ("strict-scores", "partial-scores", "error-types", "confusion", "model-card-facts"):
        assert f'<table id="{table}">' in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page


def test_bootstrap_is_seeded(tiny_model, tiny_project, tiny_report, tmp_path):
    export = str(tiny_project / "annotations" / "tiny.json")
    for seed, name in ((3, "same"), (4, "other")):
        assert (
            main(
                [
                    "evaluate",
                    str(tiny_model),
                    export,
                    "--output",
                    str(tmp_path / name),
                    "--samples",
                    "200",
                    "--seed",
                    str(seed),
                ]
            )
            == 0
        )
    first = json.loads((tiny_report / "report.json").read_text())["intervals"]
    same = json.loads((tmp_path / "same" / "report.json").read_text())["intervals"]
    other = json.loads((tmp_path / "other" / "report.json").read_text())["intervals"]
    assert same == first and other != first


def test_reports_refuse_different_texts_and_missing_documents(
    tiny_predictions, tiny_model, tiny_project, tmp_path, capsys
):
    export = str(tiny_project / "annotations" / "tiny.json")
    records = read_jsonl(tiny_predictions)
    changed = [dict(r) for r in records]
    changed[1] = {**changed[1], "text": changed[1]["text"].replace("。", "．", 1), "entities": []}
    changed_file = write_jsonl(tmp_path / "changed.jsonl", changed)
    missing_file = write_jsonl(tmp_path / "missing.jsonl", records[:-1])
    doc_changed, doc_missing = records[1]["doc_id"], records[-1]["doc_id"]

    assert main(["evaluate", str(changed_file), export, "--output", str(tmp_path / "e1")]) == 1
    assert f"doc {doc_changed}: predicted text differs from the gold text" in capsys.readouterr().err
    assert main(["evaluate", str(missing_file), export, "--output", str(tmp_path / "e2")]) == 1
    assert f"no prediction for 1 gold document(s): {doc_missing}" in capsys.readouterr().err
    assert main(["compare", str(tiny_model), str(changed_file), "--on", export, "--output", str(tmp_path / "c1")]) == 1
    assert f"changed: doc {doc_changed}: predicted text differs" in capsys.readouterr().err
    assert (
        main(["compare", str(missing_file), str(tiny_predictions), "--on", export, "--output", str(tmp_path / "c2")])
        == 1
    )
    assert f"missing: no prediction for 1 gold document(s): {doc_missing}" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("e1", "e2", "c1", "c2"))


def test_compare_model_with_an_older_prediction_file(
    tiny_predictions, tiny_model, tiny_project, tmp_path, monkeypatch, capsys
):
    # an "older version": the same predictions without any SUBSIDY_AMOUNT, saved as a file
    records = read_jsonl(tiny_predictions)
    older = [{**r, "entities": [e for e in r["entities"] if e["label"] != "SUBSIDY_AMOUNT"]} for r in records]
    dropped = [
        (r["doc_id"], e["start"], e["end"]) for r in records for e in r["entities"] if e["label"] == "SUBSIDY_AMOUNT"
    ]
    assert dropped
    older_file = write_jsonl(tmp_path / "older.jsonl", older)
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "compare",
                str(older_file),
                str(tiny_model),
                "--on",
                str(tiny_project / "annotations" / "tiny.json"),
                "--samples",
                "200",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    folder = tmp_path / "eval" / "compare-older-vs-tiny-v1"
    report = json.loads((folder / "report.json").read_text())
    assert [s["name"] for s in report["systems"]] == ["older", "tiny-v1"]
    assert [s["kind"] for s in report["systems"]] == ["predictions", "model"]
    money = report["deltas"]["tiny-v1"]["SUBSIDY_AMOUNT"]["recall"]
    assert money["a"] == 0.0 and money["delta"] == money["b"] > 0
    for label in ("ORG", "POLICY_TARGET"):
        same = report["deltas"]["tiny-v1"][label]["f1"]
        assert same["delta"] == same["low"] == same["high"] == 0.0 and not same["excludes_zero"]
    disputed = sorted((d["doc_id"], d["start"], d["end"]) for d in report["disagreements"])
    assert disputed == sorted(dropped)
    assert all(d["predicted_by"] == ["tiny-v1"] and d["label"] == "SUBSIDY_AMOUNT" for d in report["disagreements"])
    assert {d["doc_id"] for d in report["documents"]} == {doc for doc, _, _ in dropped}
    assert "tiny-v1 minus older" in out and "SUBSIDY_AMOUNT" in out
    page = (folder / "report.html").read_text()
    for table in ("side-by-side", "delta-tiny-v1", "disagreeing-documents", "disagreeing-entities"):
        assert f'<table id="{table}">' in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "## Where the versions disagree" in (folder / "report.md").read_text()


def test_compare_three_versions_on_the_dev_split(tiny_predictions, tiny_model, tiny_project, tmp_path, capsys):
    records = read_jsonl(tiny_predictions)
    empty = write_jsonl(tmp_path / "nothing.jsonl", [{**r, "entities": []} for r in records])
    output = tmp_path / "three"
    assert (
        main(
            [
                "compare",
                str(tiny_model),
                str(tiny_predictions),
                str(empty),
                "--on",
                str(tiny_project / "annotations" / "tiny.json"),
                "--split",
                "dev",
                "--samples",
                "100",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    report = json.loads((output / "report.json").read_text())
    assert report["doc_ids"] == [TINY_DEV_DOC]
    # the prediction file shares the model's name; the second column gets a distinct one
    assert [s["name"] for s in report["systems"]] == ["tiny-v1", "tiny-v1#2", "nothing"]
    # the saved predictions are the model's own: no difference at all
    assert all(d["f1"]["delta"] == 0 for d in report["deltas"]["tiny-v1#2"].values())
    assert "only 1 document" in report["bootstrap"]["note"]
    assert report["scores"]["nothing"]["micro avg"]["predicted"] == 0
    assert main(["compare", str(tiny_model), "--on", str(tiny_project / "annotations" / "tiny.json")]) == 1
    assert "at least two versions" in capsys.readouterr().err


def test_models_list_reads_the_model_cards(tiny_model, tmp_path, capsys):
    models = tmp_path / "models"
    (models / "tiny-v1").mkdir(parents=True)
    shutil.copy(tiny_model / "model_card.json", models / "tiny-v1" / "model_card.json")
    (models / "half-copied").mkdir()
    (models / ".v2.partial").mkdir()
    assert main(["models", "list", "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    card = read_model_card(tiny_model)
    row = next(line for line in out.splitlines() if line.startswith("| tiny-v1 "))
    assert card["created"] in row and "| scratch |" in row and "annotations/tiny.json" in row
    assert f"| {card['dev_metrics']['micro']['f1']:.3f} |" in row and "| 4/1 |" in row
    assert "| half-copied | no model_card.json |" in out and ".v2.partial" not in out
    assert main(["models", "list", "--models-dir", str(models), "--json"]) == 0
    entries = {e["version"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["tiny-v1"]["dev_micro_f1"] == card["dev_metrics"]["micro"]["f1"]
    assert entries["tiny-v1"]["training_seconds"] == card["training"]["seconds"]
    assert main(["models", "list", "--models-dir", str(tmp_path / "nope")]) == 1
    assert "no such models folder" in capsys.readouterr().err
