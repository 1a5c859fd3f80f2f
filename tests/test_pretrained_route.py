"""The pretrained route with bert-base-chinese's real vocabulary and configuration (tests/data/
bert-base-chinese; random weights, one layer instead of twelve): tokenization of the project's texts,
the pretrained token-type vector kept under the feature channels, then train, save, load, predict with
exact offsets, ONNX parity and INT8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import LABELS, ROOT, TINY_CONFIG, TINY_TRAIN_DOCS
from policy_ner.config import config_from_dict
from policy_ner.model.encoding import encode_text

pytestmark = pytest.mark.slow

BERT_FILES = Path(__file__).parent / "data" / "bert-base-chinese"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A bert-base-chinese-shaped checkpoint (hidden 768, 12 heads, real vocabulary), one layer deep."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = tmp_path_factory.mktemp("bert-base-chinese-1layer")
    config = BertConfig(**{**json.loads((BERT_FILES / "config.json").read_text()), "num_hidden_layers": 1})
    torch.manual_seed(0)
    model = BertForMaskedLM(config)
    with torch.no_grad():  # a pretrained token-type table is not zero; make row 0 stand out
        model.bert.embeddings.token_type_embeddings.weight.normal_(0.0, 0.5)
    model.save_pretrained(folder)
    BertTokenizer.from_pretrained(BERT_FILES).save_pretrained(folder)  # vocab.txt, BERT's defaults
    return folder


def pretrained_config(base: Path, **train):
    return config_from_dict(
        {
            **TINY_CONFIG,
            "name": "bert-shape",
            "model": {"base": str(base), "features": ["jieba", "money"], "crf": True},
            "window": {"max_length": 128, "stride": 32},
            "train": {**TINY_CONFIG["train"], "epochs": 3, "learning_rate": 5e-4, "batch_size": 8, **train},
        }
    )


def test_every_character_of_the_corpus_is_one_token_with_exact_offsets(bert_dir, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "data" / "raw").rglob("*.txt"))]
    characters = sum(len(t) for t in texts)
    unknown = encoded = 0
    for text in texts:
        encoding = encode_text(text, tokenizer)
        assert len(encoding.input_ids) == len(encoding.units)  # one token per non-space character
        assert all(not text[i].isspace() for i in encoding.units)
        unknown += encoding.input_ids.count(tokenizer.unk_token_id)
        encoded += len(encoding.input_ids)
    rate = unknown / encoded
    with capsys.disabled():
        print(f"\n[UNK] rate of data/raw under bert-base-chinese's vocabulary: {unknown}/{encoded} = {rate:.4%}")
    assert characters > 40_000 and rate < 0.001  # 1.5% before curly quotes and dashes got stand-ins

    # digit runs, Latin words and full-width forms go one character at a time (no `202` + `##6`)
    text = "2026年投入58.09万元，ABC公司与ＡＢＣ集团“台胞”—"
    encoding = encode_text(text, tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(encoding.input_ids)
    assert [text[i] for i in encoding.token_chars] == [c for c in text if not c.isspace()]
    assert pieces[:4] == ["2", "0", "2", "6"] and not any(p.startswith("##") for p in pieces)
    assert tokenizer.unk_token not in pieces and pieces[-4:] == ['"', "台", "胞", '"'][-3:] + ["-"]


def test_the_pretrained_token_type_vector_is_kept_under_the_feature_channels(bert_dir):
    from transformers import BertModel

    from policy_ner.model.network import load_base_tokenizer, new_model

    config = pretrained_config(bert_dir)
    tokenizer = load_base_tokenizer(config, [])
    model = new_model(config, tokenizer, 128, feature_sizes=[4, 3]).eval()
    base = BertModel.from_pretrained(bert_dir, add_pooling_layer=False).eval()
    kept = model.bert.embeddings.token_type_embeddings
    assert torch.equal(kept.weight, base.embeddings.token_type_embeddings.weight)
    assert all(float(channel.weight.detach().abs().max()) == 0.0 for channel in kept.channels)

    ids = torch.tensor([tokenizer("对台资企业给予补贴")["input_ids"]])
    features = torch.tensor([[0, 1, 5, 11, 2, 0, 7, 3, 1, 0, 0]])[:, : ids.shape[1]]
    with torch.no_grad():
        ours = model.bert(ids, token_type_ids=features).last_hidden_state
        theirs = base(ids, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)  # untrained channels change nothing


def test_train_save_load_predict_export_and_quantize_on_the_bert_shape(bert_dir, tiny_project, tmp_path):
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.export import export_onnx
    from policy_ner.model.predictor import Predictor
    from policy_ner.train.run import train

    result = train(pretrained_config(bert_dir), root=tiny_project, version="bert-shape", log=lambda *_: None)
    losses = [r.loss for r in result.history]
    assert losses[-1] < losses[0]
    settings = json.loads((result.model_dir / "config.json").read_text())
    assert settings["pretrained_token_types"] is True and settings["hidden_size"] == 768

    documents = {d.doc_id: d for d in load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)}
    text = documents[TINY_TRAIN_DOCS[0]].text + "\n2026年拨付𠮷林台资企业58.09万元。"
    torch_found = Predictor.from_pretrained(result.model_dir).predict_one(text)
    assert all(text[e.start : e.end] == e.text for e in torch_found)

    exported = export_onnx(result.model_dir, tmp_path / "onnx")
    assert exported.max_difference < 1e-3
    onnx_found = Predictor.from_pretrained(result.model_dir, runtime="onnx", onnx_dir=tmp_path / "onnx").predict_one(
        text
    )
    assert [(e.label, e.start, e.end) for e in onnx_found] == [(e.label, e.start, e.end) for e in torch_found]
    int8 = Predictor.from_pretrained(result.model_dir, runtime="onnx-int8", onnx_dir=tmp_path / "onnx")
    assert all(text[e.start : e.end] == e.text for e in int8.predict_one(text))
