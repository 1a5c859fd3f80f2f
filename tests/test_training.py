"""A real (tiny) model trained on real annotated policy text, then used through the CLI."""

from __future__ import annotations

import json

import pytest

from conftest import LABELS, TINY_DEV_DOC, TINY_TRAIN_DOCS
from policy_ner.cli import main
from policy_ner.files import atomic_directory
from policy_ner.labelstudio.exports import load_documents
from policy_ner.model.predictor import Predictor, predict_documents
from policy_ner.model.registry import read_model_card
from policy_ner.predict.outputs import read_predictions
from policy_ner.scoring import evaluate

pytestmark = pytest.mark.slow


def tiny_documents(tiny_project):
    return {d.doc_id: d for d in load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)}


def test_model_finds_the_entities_it_was_trained_on(tiny_model, tiny_project):
    docs = tiny_documents(tiny_project)
    train_docs = [docs[d] for d in TINY_TRAIN_DOCS]
    predictor = Predictor.from_pretrained(tiny_model)
    result = evaluate(train_docs, predict_documents(predictor, train_docs), LABELS)
    assert result.micro.f1 >= 0.8, result.per_label
    for label in LABELS:
        assert result.per_label[label].f1 >= 0.6, (label, result.per_label[label])
    found = {e.text for e in predictor.predict_one(docs["001_ns_tech_p1"].text)}
    assert {"国家高新技术企业", "50万元"} <= found


def test_model_directory_holds_weights_tokenizer_labels_and_card(tiny_model, tiny_project):
    names = {p.name for p in tiny_model.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "policy_ner.json",
        "model_card.json",
        "README.md",
        "train_config.yaml",
    } <= names
    card = read_model_card(tiny_model)
    assert card["data"]["dev_documents"] == [TINY_DEV_DOC]
    assert sorted(card["data"]["train_documents"]) == sorted(TINY_TRAIN_DOCS)
    (annotation_file,) = card["data"]["annotation_files"]
    assert annotation_file["path"] == "annotations/tiny.json" and len(annotation_file["sha256"]) == 64
    assert card["training"]["seconds"] > 0 and card["training"]["peak_memory_mb"] > 0
    assert set(card["dev_metrics"]["per_label"]) == set(LABELS)
    assert "git_commit" in card and card["config"]["train"]["epochs"] == 40
    settings = json.loads((tiny_model / "policy_ner.json").read_text())
    assert settings["tags"][0] == "O" and settings["labels"] == LABELS
    log = (tiny_project / "training" / "tiny-v1" / "log.jsonl").read_text().splitlines()
    assert len(log) == 40 and json.loads(log[-1])["loss"] < json.loads(log[0])["loss"]
    assert "## Dev metrics" in (tiny_model / "README.md").read_text()
    assert not [p for p in (tiny_project / "models").iterdir() if p.name.startswith(".")]


def test_predicted_offsets_are_exact_on_text_with_non_bmp_characters(tiny_model, tiny_project):
    original = tiny_documents(tiny_project)["001_ns_tech_p1"].text
    # astral characters (one str index each, two UTF-16 units, four UTF-8 bytes) in place of
    # punctuation, so an offset counted in any other unit would land in the wrong place
    text = original.replace("。", "😀").replace("，", "𠮷")
    predictor = Predictor.from_pretrained(tiny_model)
    found = predictor.predict_one(text)
    assert found, "the model should find entities in its own training document"
    for entity in found:
        assert text[entity.start : entity.end] == entity.text
        assert entity.text == entity.text.strip()
    plain = {(e.label, e.text) for e in predictor.predict_one(original)}
    noisy = {(e.label, e.text) for e in found}
    assert len(plain & noisy) >= 0.6 * len(plain)


def test_cli_round_trip_train_evaluate_predict(tiny_model, tiny_project, tmp_path, capsys):
    export = tiny_project / "annotations" / "tiny.json"
    report_dir = tmp_path / "eval"
    assert main(["evaluate", str(tiny_model), str(export), "--split", "dev", "--output", str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["doc_ids"] == [TINY_DEV_DOC] and report["context"]["split"] == "dev"
    assert report["micro"] == read_model_card(tiny_model)["dev_metrics"]["micro"]
    assert "seqeval strict mode" in (report_dir / "report.md").read_text()

    docs = tiny_documents(tiny_project)
    inputs = tmp_path / "inputs"
    (inputs / "nested").mkdir(parents=True)
    for doc_id in TINY_TRAIN_DOCS[:2]:
        (inputs / f"{doc_id}.txt").write_text(docs[doc_id].text, encoding="utf-8")
    (inputs / "nested" / f"{TINY_DEV_DOC}.txt").write_text(docs[TINY_DEV_DOC].text, encoding="utf-8-sig")
    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(tiny_model), str(inputs), "--output", str(output)]) == 0
    records = read_predictions(output)
    assert sorted(r["doc_id"] for r in records) == sorted(TINY_TRAIN_DOCS[:2] + [TINY_DEV_DOC])
    for record in records:
        assert record["text"] == docs[record["doc_id"]].text  # BOM removed, text otherwise unmodified
        assert set(record["entities"][0]) == {"label", "start", "end", "text", "score"}

    # scoring the saved predictions gives the same figures as scoring the model directly
    subset = tmp_path / "subset.json"
    tasks = json.loads(export.read_text())
    subset.write_text(
        json.dumps([t for t in tasks if t["data"]["doc_id"] in {r["doc_id"] for r in records}], ensure_ascii=False)
    )
    assert main(["evaluate", str(output), str(subset), "--output", str(tmp_path / "from-file")]) == 0
    assert main(["evaluate", str(tiny_model), str(subset), "--output", str(tmp_path / "from-model")]) == 0
    from_file = json.loads((tmp_path / "from-file" / "report.json").read_text())
    from_model = json.loads((tmp_path / "from-model" / "report.json").read_text())
    assert from_file["micro"] == from_model["micro"] and from_file["per_label"] == from_model["per_label"]


def test_training_refuses_to_overwrite_a_version(tiny_model, tiny_project, capsys):
    before = (tiny_model / "model.safetensors").stat().st_mtime_ns
    code = main(
        ["train", str(tiny_project / "configs" / "tiny.yaml"), "--root", str(tiny_project), "--version", "tiny-v1"]
    )
    assert code == 1 and "already exists" in capsys.readouterr().err
    assert (tiny_model / "model.safetensors").stat().st_mtime_ns == before


def test_a_failed_write_leaves_no_partial_directory(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "v1") as scratch:
        (scratch / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("crash while saving")
    assert list(tmp_path.iterdir()) == []


def test_predict_reports_a_missing_input(tiny_model, tmp_path, capsys):
    assert main(["predict", str(tiny_model), str(tmp_path / "nope.txt"), "--output", str(tmp_path / "o.jsonl")]) == 1
    assert "nope.txt: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_local_hugging_face_directory_is_a_base_model(tiny_model, tiny_project):
    """The pretrained route (`model.base` = hub id or folder) runs through the same code; here the
    folder is the tiny model itself, standing in for a local bert-base-chinese checkpoint."""
    import yaml

    from conftest import TINY_CONFIG
    from policy_ner.config import config_from_dict
    from policy_ner.train.run import train

    raw = {
        **TINY_CONFIG,
        "name": "from-local",
        "model": {"base": str(tiny_model), "features": ["jieba"]},
        "train": {**TINY_CONFIG["train"], "epochs": 2, "learning_rate": 1e-4},
    }
    result = train(config_from_dict(raw), root=tiny_project, version="from-local", log=lambda _: None)
    card = read_model_card(result.model_dir)
    assert card["base_model"] == str(tiny_model) and card["data"]["vocab_files"] == 0
    assert card["vocab_size"] == read_model_card(tiny_model)["vocab_size"]
    # starting from the trained weights, two gentle epochs keep what the base model knew
    predictor = Predictor.from_pretrained(result.model_dir)
    found = {e.text for e in predictor.predict_one(tiny_documents(tiny_project)["001_ns_tech_p1"].text)}
    assert {"国家高新技术企业", "50万元"} <= found
    assert yaml.safe_load((result.model_dir / "train_config.yaml").read_text())["model"]["base"] == str(tiny_model)


def test_pretrain_then_fine_tune_with_a_crf_head_from_the_checkpoint(tiny_project, tmp_path):
    """`policy-ner pretrain` writes a masked-LM checkpoint that `model.base` can name; the CRF and
    convolution head sits on top of its encoder."""
    import yaml
    from safetensors.torch import load_file

    from conftest import TINY_CONFIG
    from policy_ner.config import config_from_dict
    from policy_ner.train.run import train

    config_path = tmp_path / "pre.yaml"
    config_path.write_text(yaml.safe_dump({**TINY_CONFIG, "name": "pre"}), encoding="utf-8")
    checkpoint = tmp_path / "pretrained"
    assert (
        main(["pretrain", str(config_path), "--output", str(checkpoint), "--epochs", "3", "--root", str(tiny_project)])
        == 0
    )
    card = json.loads((checkpoint / "pretrain.json").read_text())
    assert card["epochs"] == 3 and len(card["losses"]) == 3 and card["losses"][-1] < card["losses"][0]
    assert main(["pretrain", str(config_path), "--output", str(checkpoint), "--root", str(tiny_project)]) == 1

    raw = {
        **TINY_CONFIG,
        "name": "fine",
        "model": {"base": str(checkpoint), "features": ["jieba"], "conv_layers": 1, "crf": True},
        "train": {**TINY_CONFIG["train"], "epochs": 15},
    }
    result = train(config_from_dict(raw), root=tiny_project, version="fine", log=lambda _: None)
    pretrained = load_file(checkpoint / "model.safetensors")
    fine = Predictor.from_pretrained(result.model_dir)
    assert type(fine.model).__name__ == "PolicyNerBertForTokenClassification"
    assert fine.crf[0] is not None
    embedding = "bert.embeddings.word_embeddings.weight"
    assert embedding in pretrained and fine.model.state_dict()[embedding].shape == pretrained[embedding].shape
    settings = json.loads((result.model_dir / "policy_ner.json").read_text())
    assert len(settings["crf"]["transitions"]) == len(settings["tags"])
    docs = tiny_documents(tiny_project)
    train_docs = [docs[d] for d in TINY_TRAIN_DOCS]
    assert evaluate(train_docs, predict_documents(fine, train_docs), LABELS).micro.f1 > 0.5


def test_the_fitted_features_travel_with_the_model(tiny_model, tiny_project):
    """The gazetteer learned from the training mentions is saved in the model directory and used
    at prediction time, with every channel of the config."""
    settings = json.loads((tiny_model / "policy_ner.json").read_text(encoding="utf-8"))
    assert settings["features"]["channels"] == ["jieba", "lac", "gazetteer", "money"]
    gazetteer = settings["features"]["gazetteer"]
    assert gazetteer["国家高新技术企业"] == "POLICY_TARGET"
    docs = tiny_documents(tiny_project)
    trained_on = {d.text[s.start : s.end] for doc_id in TINY_TRAIN_DOCS for d in [docs[doc_id]] for s in d.spans}
    assert set(gazetteer) == {m for m in trained_on if len(m) >= 2}  # the dev document's mentions are not in it
    predictor = Predictor.from_pretrained(tiny_model)
    assert predictor.features.gazetteer == gazetteer
    assert settings["crf"] is not None and predictor.crf[0] is not None


def test_weight_averaging_and_entity_weighting(tiny_project, tmp_path):
    """`train.average_last` keeps the mean of the last epochs' weights; `train.entity_weight`
    trains a softmax head with heavier entity tags; both give a working model."""

    import torch

    from conftest import TINY_CONFIG
    from policy_ner.config import ConfigError, config_from_dict
    from policy_ner.train.loop import WeightAverage, entity_class_weights
    from policy_ner.train.run import fit_model

    layer = torch.nn.Linear(2, 2)
    average = WeightAverage(layer)
    for value in (1.0, 2.0, 6.0):
        torch.nn.init.constant_(layer.weight, value)
        average.add(layer)
    average.load_into(layer)
    assert torch.allclose(layer.weight, torch.full((2, 2), 3.0))

    raw = {
        **TINY_CONFIG,
        "model": {**TINY_CONFIG["model"], "crf": False},
        "train": {**TINY_CONFIG["train"], "entity_weight": 3.0, "average_last": 5},
    }
    config = config_from_dict(raw)
    assert entity_class_weights(config).tolist() == [1.0] + [3.0] * 6
    with pytest.raises(ConfigError, match="entity_weight"):
        config_from_dict({**raw, "model": TINY_CONFIG["model"]})
    docs = tiny_documents(tiny_project)
    train_docs = [docs[d] for d in TINY_TRAIN_DOCS]
    fitted = fit_model(config, train_docs, [d.text for d in train_docs], log=lambda _: None)
    assert evaluate(train_docs, predict_documents(fitted.predictor(config), train_docs), LABELS).micro.f1 > 0.6
