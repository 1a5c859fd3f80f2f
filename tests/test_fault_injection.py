"""Fault injection (issue 16): `kill -9` at random points of `predict --resume`, `train` and `ls pull`,
each run as a user runs it (a separate process), then a check that nothing already written was lost or
duplicated and that the next run finishes the work.

The kill points come from a seeded generator: `POLICY_NER_FAULT_SEED` replays a run (the seed used is
printed, and shown when a test fails); `POLICY_NER_FAULT_KILLS` sets the kills per command (default 3).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import LABELS, TINY_CONFIG, TINY_DEV_DOC, corpus_tasks, write_json
from policy_ner.cli import main
from policy_ner.predict.outputs import recover

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("POLICY_NER_FAULT_KILLS", "3"))
SEED = int(os.environ.get("POLICY_NER_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))


@pytest.fixture
def rng(request) -> random.Random:
    print(f"fault injection seed {SEED} (POLICY_NER_FAULT_SEED={SEED} replays it)")
    return random.Random(f"{SEED}-{request.node.name}")


def start(*argv: str, env: dict | None = None) -> subprocess.Popen:
    """`policy-ner ARGV` in its own process group, so that a kill reaches every process it started."""
    return subprocess.Popen(
        [sys.executable, "-m", "policy_ner.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def kill(process: subprocess.Popen) -> bool:
    """SIGKILL the process group; whether the process was still running (False: it had finished)."""
    running = process.poll() is None
    if running:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return running


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    text = output.decode("utf-8", errors="replace")
    assert process.returncode == 0, text
    return text


# --- predict --resume ----------------------------------------------------------------------------

DOCUMENTS = 240


@pytest.fixture(scope="module")
def many_documents(tmp_path_factory) -> Path:
    """JSONL of real sentences of the corpus, one document each: enough batches for kills to land between."""
    sentences = []
    for task in corpus_tasks():
        sentences += [s + "。" for s in task["data"]["text"].replace("\n", "").split("。") if len(s) >= 12]
    path = tmp_path_factory.mktemp("fault") / "documents.jsonl"
    path.write_text(
        "".join(
            json.dumps({"doc_id": f"s{i:04d}", "text": text}, ensure_ascii=False) + "\n"
            for i, text in enumerate(sentences[:DOCUMENTS])
        ),
        encoding="utf-8",
    )
    return path


def complete_ids(path: Path, fmt: str, repair: bool = True) -> list[str]:
    """The doc ids of `path` in file order (duplicates kept); with `repair`, of a copy after `--resume`'s
    repair (which in a CSV also drops the last document, whose rows it cannot tell are all there)."""
    copy = path.with_name("check-" + path.name)
    shutil.copyfile(path, copy)
    if repair:
        recover(copy, fmt)
    text = copy.read_bytes().decode("utf-8-sig")
    copy.unlink()
    if fmt == "jsonl":
        return [json.loads(line)["doc_id"] for line in text.splitlines()]
    if fmt == "csv":
        ids = [row["doc_id"] for row in csv.DictReader(io.StringIO(text, newline=""))]
        return [doc_id for i, doc_id in enumerate(ids) if i == 0 or ids[i - 1] != doc_id]
    lines = text.splitlines()[1:]
    return [json.loads(line.removesuffix(","))["data"]["doc_id"] for line in lines if line not in ("]", "")]


@pytest.mark.parametrize("suffix, fmt", [(".jsonl", "jsonl"), (".csv", "csv"), (".json", "labelstudio")])
def test_predict_resume_killed_at_random_points_loses_and_duplicates_nothing(
    tiny_model, many_documents, tmp_path, rng, suffix, fmt
):
    reference = tmp_path / f"reference{suffix}"
    assert main(["predict", str(tiny_model), str(many_documents), "--output", str(reference), "--quiet"]) == 0
    expected = reference.read_bytes()
    expected_ids = complete_ids(reference, fmt, repair=False)
    assert len(expected_ids) == DOCUMENTS

    output = tmp_path / f"out{suffix}"
    done: list[str] = []
    command = ["predict", str(tiny_model), str(many_documents), "--output", str(output), "--resume", "--quiet"]
    for _ in range(KILLS):
        target = rng.uniform(0.05, 0.95) * len(expected)  # a point in the output's growth
        process = start(*command)
        while process.poll() is None and (not output.exists() or output.stat().st_size < target):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        kill(process)
        now = complete_ids(output, fmt)
        assert now == expected_ids[: len(now)], "a record is duplicated, out of order or not the reference's"
        assert len(now) >= len(done), f"{len(done) - len(now)} complete record(s) lost to the kill"
        done = now
    finish(start(*command))
    assert output.read_bytes() == expected


# --- train ---------------------------------------------------------------------------------------


def model_folders(models: Path) -> dict[str, dict[str, bytes]]:
    """Every visible model folder and the bytes of its files."""
    return {
        folder.name: {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file()}
        for folder in sorted(models.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }


def test_train_killed_at_random_points_leaves_every_version_whole(tmp_path, rng, capsys):
    from policy_ner.model.predictor import Predictor
    from policy_ner.model.registry import list_models, verify_model_files

    wanted = {"001_ns_tech_p1", "017_gwr_fujian_mintai5y", TINY_DEV_DOC}
    write_json(tmp_path / "annotations" / "few.json", [t for t in corpus_tasks() if t["data"]["doc_id"] in wanted])
    config = tmp_path / "configs" / "few.yaml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump({**TINY_CONFIG, "name": "few", "train": {**TINY_CONFIG["train"], "epochs": 8}}), encoding="utf-8"
    )
    command = ["train", str(config), "--root", str(tmp_path)]
    started = time.perf_counter()
    assert main([*command, "--version", "first"]) == 0
    seconds = time.perf_counter() - started
    models = tmp_path / "models"
    before = model_folders(models)

    for _ in range(KILLS):
        process = start(*command)
        time.sleep(rng.uniform(0.5, seconds + 5))  # from start-up (imports) to saving
        kill(process)
        after = model_folders(models)
        assert {name: after[name] for name in before} == before, "a finished version changed"
        for name in after:
            verify_model_files(models / name)  # anything visible is complete
        before = after
        assert main(["models", "list", "--models-dir", str(models)]) == 0
        assert [e.problem for e in list_models(models) if e.problem] == []

    log = finish(start(*command))
    (new,) = set(model_folders(models)) - set(before)
    verify_model_files(models / new)
    assert Predictor.from_pretrained(models / new).labels == LABELS
    assert all(".partial" not in p.name for folder in (models, tmp_path / "training") for p in folder.iterdir()), log
    capsys.readouterr()


# --- ls pull -------------------------------------------------------------------------------------


@pytest.mark.labelstudio
def test_pull_killed_at_random_points_leaves_the_old_export_or_the_new_one(
    label_studio, tiny_project, tmp_path, rng, capsys
):
    from label_studio_sdk import LabelStudio

    from policy_ner.labelstudio.exports import load_documents
    from policy_ner.labelstudio.formats import document_results
    from policy_ner.labelstudio.sync import API_KEY_ENV

    config = tiny_project / "configs" / "tiny.yaml"
    gold = {d.doc_id: d for d in load_documents([tiny_project / "annotations" / "tiny.json"], LABELS)}
    docs = tmp_path / "docs"
    docs.mkdir()
    for document in gold.values():
        (docs / f"{document.doc_id}.txt").write_text(document.text, encoding="utf-8")
    server = ["--url", label_studio.url, "--project", "fault-pull", "--config", str(config)]
    env = {API_KEY_ENV: label_studio.api_key}
    os.environ[API_KEY_ENV] = label_studio.api_key
    try:
        assert main(["ls", "push", *server, str(docs)]) == 0
        client = LabelStudio(base_url=label_studio.url, api_key=label_studio.api_key)
        (project,) = [p for p in client.projects.list() if p.title == "fault-pull"]
        tasks = {t.data["doc_id"]: t.id for t in client.tasks.list(project=project.id, fields="all")}
        first, *others = sorted(tasks)
        client.annotations.create(id=tasks[first], result=document_results(gold[first]), was_cancelled=False)
        export = tmp_path / "export.json"
        started = time.perf_counter()
        assert main(["ls", "pull", *server, "--output", str(export)]) == 0
        seconds = time.perf_counter() - started
    finally:
        del os.environ[API_KEY_ENV]
    old = export.read_bytes()
    for doc_id in others:  # the new export holds every document
        client.annotations.create(id=tasks[doc_id], result=document_results(gold[doc_id]), was_cancelled=False)

    for _ in range(KILLS):
        process = start("ls", "pull", *server, "--output", str(export), "--overwrite", env=env)
        time.sleep(rng.uniform(0.5, seconds + 5))  # start-up, the export request, validation, writing
        kill(process)
        now = export.read_bytes()
        assert now == old or len(json.loads(now)) == len(tasks), "the export is neither the old file nor the new"
        old = now
    finish(start("ls", "pull", *server, "--output", str(export), "--overwrite", env=env))
    pulled = {d.doc_id for d in load_documents([export], LABELS)}
    assert pulled == set(tasks)
    # A kill while writing may leave the atomic write's scratch file, hidden and never read as an export.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(name.startswith(".export.json.") and name.endswith(".tmp") for name in leftovers), leftovers
    capsys.readouterr()
