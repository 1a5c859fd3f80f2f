"""Cross-validation by document: fold assignment, and `policy-ner cv` end to end on real text."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import LABELS, TINY_CONFIG
from policy_ner.cli import main
from policy_ner.evaluate.cv import assign_folds
from policy_ner.labelstudio.exports import load_documents
from policy_ner.predict.outputs import read_predictions
from policy_ner.scoring import evaluate, predicted_documents
from policy_ner.types import Document


def documents(sizes):
    return [Document(f"doc{i}", "字" * size, ()) for i, size in enumerate(sizes)]


def test_folds_partition_the_documents_deterministically_and_balance_their_size():
    docs = documents([900, 120, 300, 310, 80, 500, 40, 260, 700, 150])
    folds = assign_folds(docs, 3)
    held_out = [d.doc_id for f in folds for d in f.test]
    assert sorted(held_out) == sorted(d.doc_id for d in docs)
    for fold in folds:
        assert {d.doc_id for d in fold.train} | {d.doc_id for d in fold.test} == {d.doc_id for d in docs}
        assert not {d.doc_id for d in fold.train} & {d.doc_id for d in fold.test}
    sizes = sorted(sum(len(d.text) for d in f.test) for f in folds)
    assert sizes[-1] - sizes[0] <= 900  # never worse than one document apart
    shuffled = assign_folds(list(reversed(docs)), 3)
    assert [{d.doc_id for d in f.test} for f in shuffled] == [{d.doc_id for d in f.test} for f in folds]


def test_fold_count_must_fit_the_documents():
    with pytest.raises(ValueError, match="between 2 and the number of documents"):
        assign_folds(documents([10, 20]), 3)


@pytest.mark.slow
def test_cv_command_scores_model_and_baselines_on_the_same_folds(tiny_project, tmp_path, capsys):
    config = {**TINY_CONFIG, "name": "tiny-cv", "train": {**TINY_CONFIG["train"], "epochs": 25}}
    config_path = tmp_path / "tiny-cv.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    output = tmp_path / "cv"
    assert (
        main(
            [
                "cv",
                str(config_path),
                "--folds",
                "2",
                "--baselines",
                "wordlist,crf",
                "--root",
                str(tiny_project),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| model (tiny-cv) |" in printed and "| crf |" in printed

    report = json.loads((output / "cv.json").read_text(encoding="utf-8"))
    gold = load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)
    assert sorted(d for f in report["folds"] for d in f["test_documents"]) == sorted(d.doc_id for d in gold)
    assert set(report["summary"]) == {"model", "wordlist", "crf"}
    for system, rows in report["summary"].items():
        runs = [r for r in report["per_fold"] if r["system"] == system]
        assert len(runs) == 2
        mean = sum(r["strict"]["micro"]["f1"] for r in runs) / 2
        assert rows["micro"]["f1"]["mean"] == pytest.approx(mean, abs=1e-4)
        # the pooled figure is what `evaluate` gives on the out-of-fold prediction file
        predicted = predicted_documents(read_predictions(output / "predictions" / f"{system}.jsonl"))
        assert rows["micro"]["f1"]["pooled"] == pytest.approx(evaluate(gold, predicted, LABELS).micro.f1, abs=1e-4)
        assert rows["micro"]["overlap_f1"]["mean"] >= rows["micro"]["f1"]["mean"] - 1e-9
    # the support-word regex finds subsidy amounts in documents it never saw
    assert report["summary"]["wordlist"]["SUBSIDY_AMOUNT"]["f1"]["pooled"] > 0.5
    table = (output / "cv.md").read_text(encoding="utf-8")
    assert "policy-ner cv" in table and "± " in table
