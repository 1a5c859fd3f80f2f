"""The committed configs, data manifest and labelling config are consistent with the code."""

from __future__ import annotations

import json

import pytest

from conftest import LABELS, ROOT
from policy_ner.config import ConfigError, config_from_dict, load_config
from policy_ner.corpus import read_manifest, verify_manifest
from policy_ner.labelstudio.formats import labeling_config, labels_tags
from policy_ner.tags import char_tags, spans_from_tags
from policy_ner.types import Span


@pytest.mark.parametrize("name", ["default.yaml", "bert-base-chinese.yaml"])
def test_shipped_configs_are_valid(name):
    config = load_config(ROOT / "configs" / name)
    assert config.labels == LABELS
    assert config.tags[:3] == ["O", "B-ORG", "I-ORG"]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"name": "x", "labels": ["ORG"], "trian": {}}, "unknown key(s) trian"),
        ({"name": "x", "labels": ["ORG"], "train": {"epochs": "ten"}}, "train.epochs must be int"),
        ({"name": "x", "labels": ["ORG"], "train": {"epochs": True}}, "train.epochs must be int"),
        ({"name": "x", "labels": ["org name "]}, "leading or trailing spaces"),
        ({"name": "x", "labels": ["-ORG"]}, "must not start or end with '-'"),
        ({"name": "x", "labels": [""]}, "must not be empty"),
        ({"name": "x", "labels": ["a\tb"]}, "control character"),
        ({"labels": ["ORG"]}, "missing required key name"),
        ({"name": "x", "labels": ["ORG"], "window": {"max_length": 64, "stride": 40}}, "window.stride"),
    ],
)
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_dict(raw, source="test.yaml")


def test_a_new_label_needs_only_config():
    config = config_from_dict({"name": "x", "labels": LABELS + ["POLICY_NAME"], "train": {"learning_rate": "1e-4"}})
    assert config.tags[-2:] == ["B-POLICY_NAME", "I-POLICY_NAME"] and config.train.learning_rate == 1e-4
    assert '<Label value="POLICY_NAME"' in labeling_config(config.labels)


def test_any_label_name_label_studio_allows_is_a_label():
    labels = ["company", "PER.NOM", "机构", "org name", "B-I"]
    config = config_from_dict({"name": "x", "labels": labels})
    assert config.tags[1:3] == ["B-company", "I-company"]
    assert spans_from_tags(char_tags("浙商银行在杭州", [Span(0, 4, "PER.NOM"), Span(5, 7, "B-I")])) == [
        Span(0, 4, "PER.NOM"),
        Span(5, 7, "B-I"),
    ]
    xml = labeling_config(config.labels)
    assert [tag.labels for tag in labels_tags(xml)] == [tuple(labels)]


def test_data_manifest_matches_the_raw_files():
    manifest = ROOT / "data" / "manifest.csv"
    assert verify_manifest(manifest) == []
    entries = read_manifest(manifest)
    assert len(entries) == 27
    assert {"000_b8684210232e5550", "004_6ef2b3c195398a72"} <= {e.doc_id for e in entries}


def test_committed_labelling_config_is_the_generated_one():
    committed = (ROOT / "annotations" / "labeling_config.xml").read_text(encoding="utf-8")
    assert committed == labeling_config(load_config(ROOT / "configs" / "default.yaml").labels)


def test_config_schema_describes_every_section_for_editors(capsys):
    from policy_ner.cli import main

    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["required"] == ["name", "labels"] and schema["additionalProperties"] is False
    sections = {
        name: schema["$defs"][ref["$ref"].split("/")[-1]]
        for name, ref in ((n, schema["properties"][n]) for n in ("data", "model", "window", "train"))
    }
    assert "window_jitter" in sections["train"]["properties"]
    assert "CRF" in sections["model"]["properties"]["crf"]["description"]  # the field docstrings travel
    assert all(section["additionalProperties"] is False for section in sections.values())
