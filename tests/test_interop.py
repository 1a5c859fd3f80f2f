"""A trained version in plain transformers, in a process where policy-ner cannot be imported: the
saved `modeling_policy_ner.py` loads through `auto_map` with `trust_remote_code=True`, computes the
same logits as policy-ner's own model, and runs in `pipeline("token-classification")`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import LABELS
from policy_ner.model.predictor import Predictor

pytestmark = pytest.mark.slow

TEXT = "对台资企业给予最高300万元补贴，区委台办负责受理。"

CLIENT = """
import json, sys
sys.modules["policy_ner"] = None  # a colleague's environment: no policy-ner
import torch
from transformers import AutoModelForTokenClassification, pipeline

folder, ids, types, text = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
model = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0]
ner = pipeline("token-classification", model=folder, trust_remote_code=True, aggregation_strategy="simple")
entities = [{"label": e["entity_group"], "start": int(e["start"]), "end": int(e["end"])} for e in ner(text)]
print(json.dumps({"module": type(model).__module__, "logits": logits.tolist(), "entities": entities}))
"""


def test_a_version_loads_and_runs_in_plain_transformers_without_policy_ner(tiny_model, tmp_path):
    config = json.loads((tiny_model / "config.json").read_text(encoding="utf-8"))
    assert config["auto_map"] == {
        "AutoConfig": "modeling_policy_ner.PolicyNerBertConfig",
        "AutoModelForTokenClassification": "modeling_policy_ner.PolicyNerBertForTokenClassification",
    }
    card = json.loads((tiny_model / "model_card.json").read_text(encoding="utf-8"))
    assert "modeling_policy_ner.py" in card["files"]  # checksummed like the weights

    ours = Predictor.from_pretrained(tiny_model)
    ids = ours.tokenizer(list(TEXT), is_split_into_words=True)["input_ids"]
    features = 1
    for size in config["feature_sizes"]:
        features *= size
    types = [(7 * i) % features for i in range(len(ids))]  # every channel takes several values
    with torch.no_grad():
        expected = ours.model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0]

    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(tiny_model), json.dumps(ids), json.dumps(types), TEXT],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules.")  # the saved copy, not policy-ner's
    assert torch.allclose(torch.tensor(result["logits"]), expected, atol=1e-5)
    assert result["entities"], "the pipeline found nothing"
    for entity in result["entities"]:
        assert entity["label"] in LABELS and 0 <= entity["start"] < entity["end"] <= len(TEXT)


def test_the_model_readme_carries_hub_metadata(tiny_model):
    readme = (tiny_model / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\n")
    metadata = yaml.safe_load(readme.split("---\n")[1])
    assert metadata["pipeline_tag"] == "token-classification" and metadata["language"] == ["zh"]
    card = json.loads((tiny_model / "model_card.json").read_text(encoding="utf-8"))
    (result,) = metadata["model-index"][0]["results"]
    f1 = {m["name"]: m["value"] for m in result["metrics"]}["strict micro F1"]
    assert f1 == round(card["dev_metrics"]["micro"]["f1"], 4)
