"""Other teams' NER data: character-tag and CLUENER files become Label Studio exports that validate, train,
predict and evaluate under their own label set and span-edge conventions (`data.edge_punctuation`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from policy_ner.cli import main
from policy_ner.labelstudio.exports import load_documents, read_exports
from policy_ner.labelstudio.imports import (
    ForeignDataError,
    Sentence,
    import_documents,
    pack_sentences,
    read_cluener,
    read_tagged_characters,
)
from policy_ner.types import Span

MSRA_SAMPLE = Path(__file__).parent / "data" / "msra-test-sample.bio"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tag_schemes_read_to_the_same_spans(tmp_path):
    chars = "国务院台办在北京"
    schemes = {
        "bio": ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "I-LOC"],
        "bioes": ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "E-ORG", "O", "B-LOC", "E-LOC"],
        "bmes": ["B-ORG", "M-ORG", "M-ORG", "M-ORG", "E-ORG", "O", "B-LOC", "E-LOC"],
    }
    expected = (Span(0, 5, "ORG"), Span(6, 8, "LOC"))
    for name, tags in schemes.items():
        path = write(tmp_path / f"{name}.txt", "".join(f"{c} {t}\n" for c, t in zip(chars, tags)) + "\n")
        [sentence] = read_tagged_characters(path)
        assert (sentence.text, sentence.spans) == (chars, expected), name


def test_single_character_and_stray_inside_tags(tmp_path):
    lines = ["京 S-LOC", "和 O", "沪 I-LOC", "市 I-LOC", "办 I-ORG"]
    [sentence] = read_tagged_characters(write(tmp_path / "x.bio", "\n".join(lines) + "\n"))
    # conlleval's reading: an I- tag that continues nothing (or another label) opens a span
    assert sentence.spans == (Span(0, 1, "LOC"), Span(2, 4, "LOC"), Span(4, 5, "ORG"))


def test_bad_tag_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.bio", "中 B-ORG\n国 X-ORG\n")
    with pytest.raises(ForeignDataError, match=r"bad\.bio:2: tag 'X-ORG'"):
        list(read_tagged_characters(path))
    path = write(tmp_path / "bad2.bio", "中 O\n\n国家 O\n")
    with pytest.raises(ForeignDataError, match=r"bad2\.bio:3: expected one character"):
        list(read_tagged_characters(path))


def test_cluener_offsets_are_inclusive_and_checked(tmp_path):
    good = {"text": "浙商银行在杭州", "label": {"company": {"浙商银行": [[0, 3]]}, "address": {"杭州": [[5, 6]]}}}
    [sentence] = read_cluener(write(tmp_path / "good.json", json.dumps(good, ensure_ascii=False) + "\n"))
    assert [(s.label, s.text_in(sentence.text)) for s in sentence.spans] == [
        ("company", "浙商银行"),
        ("address", "杭州"),
    ]
    bad = {"text": "浙商银行在杭州", "label": {"company": {"浙商银行": [[1, 4]]}}}
    path = write(tmp_path / "bad.json", "\n" + json.dumps(bad, ensure_ascii=False) + "\n")
    with pytest.raises(ForeignDataError, match=r"bad\.json:2: company \[1, 4\] is '商银行在'"):
        list(read_cluener(path))


def test_packing_keeps_every_span_on_its_text():
    sentences = [
        Sentence("甲公司成立。", (Span(0, 3, "ORG"),), 1),
        Sentence("乙大学（北京）招生。", (Span(0, 7, "ORG"),), 3),
        Sentence("丙" * 30, (), 5),
        Sentence("丁局发文。", (Span(0, 2, "ORG"),), 7),
    ]
    packed = list(pack_sentences(sentences, max_chars=20))
    assert [line for _, _, line in packed] == [1, 5, 7]
    mentions = [s.text_in(text) for text, spans, _ in packed for s in spans]
    assert mentions == ["甲公司", "乙大学（北京）", "丁局"]
    assert packed[0][0] == "甲公司成立。\n乙大学（北京）招生。"
    assert len(list(pack_sentences(sentences, max_chars=0))) == 4


def test_mapping_drops_and_counts_unmapped_labels():
    documents, summary = import_documents(
        MSRA_SAMPLE, "bio", mapping={"ORG": "ORG"}, require_labels=["ORG"], max_chars=400
    )
    assert summary.dropped["PER"] > 0 and summary.dropped["LOC"] > 0
    assert set(summary.kept) == {"ORG"}
    assert all(s.label == "ORG" for d in documents for s in d.spans)
    assert sum(len(d.spans) for d in documents) == summary.kept["ORG"]
    assert all("ORG" in {s.label for s in d.spans} for d in documents)


MSRA_LABELS = ["人名", "place.name", "org"]


@pytest.fixture(scope="module")
def msra_project(tmp_path_factory) -> Path:
    """A project of another data set: MSRA's PER/LOC/ORG sample, imported through the CLI under label names
    a user might choose (Chinese, lower case, with a dot), none of which this project's labels look like."""
    root = tmp_path_factory.mktemp("msra")
    (root / "annotations").mkdir()
    code = main(
        ["annotations", "import", str(MSRA_SAMPLE), "--format", "bio", "--pack-chars", "300"]
        + [f"--map={source}={label}" for source, label in zip(("PER", "LOC", "ORG"), MSRA_LABELS)]
        + ["--output", str(root / "annotations" / "msra.json")]
    )
    assert code == 0
    config = {
        "name": "msra-tiny",
        "labels": MSRA_LABELS,
        "data": {
            "annotations": ["annotations/*.json"],
            "vocab_sources": [],
            "edge_punctuation": "",
            "dev_fraction": 0.2,
        },
        "model": {
            "base": "scratch",
            "hidden_size": 64,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 128,
            "dropout": 0.0,
            "features": ["jieba"],
            "crf": True,
        },
        "window": {"max_length": 96, "stride": 24},
        "train": {"learning_rate": 3.0e-3, "epochs": 12, "batch_size": 8, "seed": 3, "window_jitter": False},
    }
    (root / "configs").mkdir()
    (root / "configs" / "msra.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return root


def test_import_refuses_to_overwrite(msra_project, capsys):
    export = msra_project / "annotations" / "msra.json"
    before = export.read_bytes()
    assert main(["annotations", "import", str(MSRA_SAMPLE), "--output", str(export)]) == 2
    assert "exists" in capsys.readouterr().out
    assert export.read_bytes() == before


def test_edge_rule_is_the_configs(msra_project, capsys):
    export = msra_project / "annotations" / "msra.json"
    policy_rule = read_exports([export], MSRA_LABELS)
    edge_issues = [i for i in policy_rule.issues if "punctuation" in i.message]
    assert edge_issues and all(i.span for i in edge_issues)
    assert main(["annotations", "validate", str(export), "--config", str(msra_project / "configs" / "msra.yaml")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("OK: ")


def test_another_label_set_trains_predicts_and_evaluates(msra_project, capsys):
    config = msra_project / "configs" / "msra.yaml"
    assert main(["train", str(config), "--root", str(msra_project), "--version", "msra-v1"]) == 0
    model = msra_project / "models" / "msra-v1"
    assert json.loads((model / "policy_ner.json").read_text())["edge_punctuation"] == ""

    export = msra_project / "annotations" / "msra.json"
    report = msra_project / "eval" / "msra-v1"
    assert main(["evaluate", str(model), str(export), "--output", str(report), "--samples", "50"]) == 0
    scores = json.loads((report / "report.json").read_text())
    assert set(scores["labels"]) == set(MSRA_LABELS)
    # trained on most of these documents: it must have learnt something of each label
    assert scores["micro"]["f1"] > 0.3, scores["micro"]

    from policy_ner.model.predictor import Predictor

    documents = load_documents([export], MSRA_LABELS, edge_punctuation="")
    found = Predictor.from_pretrained(model).predict([d.text for d in documents])
    entities = [e for doc_entities in found for e in doc_entities]
    assert {e.label for e in entities} <= set(MSRA_LABELS) and len({e.label for e in entities}) >= 2
    for doc, doc_entities in zip(documents, found):
        assert all(doc.text[e.start : e.end] == e.text for e in doc_entities)
