"""Shared fixtures. Everything runs on local files: the repository's own annotations and texts, and a
real Label Studio server on 127.0.0.1 (`label_studio`, started in the background as soon as the tests
are collected, so its start overlaps with the tests before it)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml

from labelstudio_fixture import SKIP_VARIABLE, BackgroundLabelStudio, RunningLabelStudio

ROOT = Path(__file__).resolve().parent.parent
CORPUS_EXPORT = ROOT / "annotations" / "corpus-v1.json"
LABELS = ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"]

# Short real documents with all three labels; the tiny model is trained on these.
TINY_TRAIN_DOCS = ["001_ns_tech_p1", "005_ns_tech_p5", "017_gwr_fujian_mintai5y", "023_gwr_shanxi"]
TINY_DEV_DOC = "034_gwr_chongqing"

TINY_CONFIG = {
    "name": "tiny",
    "labels": LABELS,
    "data": {"annotations": ["annotations/*.json"], "vocab_sources": [], "dev_documents": [TINY_DEV_DOC]},
    "model": {
        "base": "scratch",
        "hidden_size": 96,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 192,
        "dropout": 0.0,
        "features": ["jieba", "lac", "gazetteer", "money"],
        "conv_layers": 1,
        "crf": True,
    },
    "window": {"max_length": 96, "stride": 24},
    "train": {
        "learning_rate": 2.0e-3,
        "epochs": 40,
        "batch_size": 8,
        "warmup_ratio": 0.05,
        "seed": 7,
        "window_jitter": False,
    },
}


def corpus_tasks() -> list[dict]:
    return json.loads(CORPUS_EXPORT.read_text(encoding="utf-8"))


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A project folder with a 5-document export and the tiny training config."""
    root = tmp_path_factory.mktemp("project")
    wanted = set(TINY_TRAIN_DOCS) | {TINY_DEV_DOC}
    write_json(root / "annotations" / "tiny.json", [t for t in corpus_tasks() if t["data"]["doc_id"] in wanted])
    (root / "configs").mkdir()
    (root / "configs" / "tiny.yaml").write_text(yaml.safe_dump(TINY_CONFIG), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_project) -> Path:
    """Trained once per session through the CLI, as a user would."""
    from policy_ner.cli import main

    code = main(
        ["train", str(tiny_project / "configs" / "tiny.yaml"), "--root", str(tiny_project), "--version", "tiny-v1"]
    )
    assert code == 0
    return tiny_project / "models" / "tiny-v1"


@pytest.fixture(scope="session")
def tiny_predictions(tiny_model, tiny_project) -> Path:
    """The tiny model's predictions on all five documents, saved as a prediction JSONL file."""
    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.model.predictor import Predictor
    from policy_ner.predict.outputs import prediction_record

    docs = load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)
    found = Predictor.from_pretrained(tiny_model).predict([d.text for d in docs])
    path = tiny_project / "predictions" / "tiny-v1.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "".join(
            json.dumps(prediction_record(d.doc_id, d.text, e), ensure_ascii=False) + "\n" for d, e in zip(docs, found)
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def tiny_report(tiny_model, tiny_project, tmp_path_factory) -> Path:
    """`policy-ner evaluate` of the tiny model on all five documents: the report folder."""
    from policy_ner.cli import main

    output = tmp_path_factory.mktemp("reports") / "tiny-v1"
    assert (
        main(
            [
                "evaluate",
                str(tiny_model),
                str(tiny_project / "annotations" / "tiny.json"),
                "--output",
                str(output),
                "--samples",
                "200",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    return output


def pytest_configure(config):
    # training caches featurized examples per user; the tests get a cache of their own
    os.environ["POLICY_NER_CACHE"] = tempfile.mkdtemp(prefix="policy-ner-test-cache-")


def pytest_collection_finish(session):
    if os.environ.get(SKIP_VARIABLE) != "1" and any(i.get_closest_marker("labelstudio") for i in session.items):
        session.config.stash[BackgroundLabelStudio.KEY] = BackgroundLabelStudio.begin()


def pytest_terminal_summary(terminalreporter, config):
    background = config.stash.get(BackgroundLabelStudio.KEY, None)
    if background is not None and background.summary():
        terminalreporter.write_line(background.summary())


def pytest_sessionfinish(session):
    background = session.config.stash.get(BackgroundLabelStudio.KEY, None)
    if background is not None:
        background.stop()


@pytest.fixture(scope="session")
def label_studio(request) -> RunningLabelStudio:
    """The session's Label Studio server. Skipped only when POLICY_NER_SKIP_LABEL_STUDIO=1; a missing
    install is a failure."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{SKIP_VARIABLE}=1")
    background = request.config.stash.get(BackgroundLabelStudio.KEY, None)
    if background is None:  # collected without the marker, e.g. a test added by a plugin
        background = request.config.stash[BackgroundLabelStudio.KEY] = BackgroundLabelStudio.begin()
    return background.result()
