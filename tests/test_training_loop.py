"""The training loop's choices, each on the tiny model and real text: the best dev epoch and early
stopping, `train --resume` after an interruption (the same weights as an uninterrupted run), gradient
accumulation, bf16, devices, and two-process data-parallel training (torchrun, gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from conftest import LABELS, TINY_CONFIG, TINY_DEV_DOC, corpus_tasks, write_json
from policy_ner.cli import main
from policy_ner.config import ConfigError, config_from_dict
from policy_ner.labelstudio.server import free_port
from policy_ner.model.registry import read_model_card
from policy_ner.train.checkpoints import CheckpointMismatch

pytestmark = pytest.mark.slow

SKIP_MULTIPROCESS = "POLICY_NER_SKIP_MULTIPROCESS"
DOCS = ["001_ns_tech_p1", "005_ns_tech_p5", "017_gwr_fujian_mintai5y", TINY_DEV_DOC]


def project(root: Path, **train) -> Path:
    """A project of four real documents (one of them dev) and the tiny config with `train` changes."""
    write_json(root / "annotations" / "few.json", [t for t in corpus_tasks() if t["data"]["doc_id"] in DOCS])
    config = {**TINY_CONFIG, "name": "loop", "train": {**TINY_CONFIG["train"], "epochs": 6, **train}}
    path = root / "configs" / "loop.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def weights(model_dir: Path) -> dict:
    return load_file(model_dir / "model.safetensors")


def history(root: Path, version: str) -> list[dict]:
    lines = (root / "training" / version / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_select_best_keeps_the_best_dev_epoch_and_patience_stops_early(tmp_path, capsys):
    config = project(tmp_path, epochs=40, select="best", patience=8)
    assert main(["train", str(config), "--root", str(tmp_path), "--version", "best"]) == 0
    out = capsys.readouterr().out
    records = history(tmp_path, "best")
    scores = [r["dev_f1"] for r in records]
    assert all(isinstance(f1, float) for f1 in scores) and max(scores) > 0
    best_epoch = max(records, key=lambda r: (r["dev_f1"], -r["epoch"]))["epoch"]
    card = read_model_card(tmp_path / "models" / "best")
    assert card["training"]["kept_epoch"] == best_epoch and f"kept epoch {best_epoch}" in out
    # the saved weights are that epoch's: scored again on dev, they give its F1
    assert card["dev_metrics"]["micro"]["f1"] == pytest.approx(records[best_epoch - 1]["dev_f1"], abs=1e-5)
    if len(records) < 40:
        assert "early stop" in out and len(records) - best_epoch == 8


def test_select_best_without_dev_documents_is_refused(tmp_path, capsys):
    config = project(tmp_path, select="best")
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["data"]["dev_documents"] = []
    raw["data"]["dev_fraction"] = 0.0
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["train", str(config), "--root", str(tmp_path)]) == 1
    assert "no dev documents" in capsys.readouterr().err


class Interrupted(Exception):
    pass


def test_resume_after_an_interruption_ends_with_the_uninterrupted_weights(tmp_path, capsys):
    from policy_ner.config import load_config
    from policy_ner.train.run import train

    config_path = project(tmp_path, window_jitter=True)  # the jitter generator must be restored too
    config = load_config(config_path)
    train(config, root=tmp_path, version="straight", log=lambda *_: None)

    def stop_after_epoch_3(line: str) -> None:
        if line.startswith("epoch 3/"):
            raise Interrupted  # after epoch 3's checkpoint was written

    with pytest.raises(Interrupted):
        train(config, root=tmp_path, version="cut", log=stop_after_epoch_3)
    checkpoint = tmp_path / "training" / ".cut.checkpoint"
    assert [p.name for p in checkpoint.iterdir()] == ["epoch-3"]
    assert not (tmp_path / "models" / "cut").exists()

    # a run of another config does not resume it
    other = config.model_copy(update={"train": config.train.model_copy(update={"learning_rate": 1e-3})})
    with pytest.raises(CheckpointMismatch, match="another config"):
        train(other, root=tmp_path, version="cut", resume=True, log=lambda *_: None)
    # a run without --resume does not silently start it again
    with pytest.raises(FileExistsError, match="pass --resume"):
        train(config, root=tmp_path, version="cut", log=lambda *_: None)

    assert main(["train", str(config_path), "--root", str(tmp_path), "--resume"]) == 0  # finds 'cut' itself
    assert "resuming after epoch 3 of 6" in capsys.readouterr().out
    straight, resumed = weights(tmp_path / "models" / "straight"), weights(tmp_path / "models" / "cut")
    assert straight.keys() == resumed.keys()
    assert all((straight[k] == resumed[k]).all() for k in straight)
    assert [r["loss"] for r in history(tmp_path, "cut")] == [r["loss"] for r in history(tmp_path, "straight")]
    assert not checkpoint.exists()


def test_bf16_mixed_precision_trains_on_the_cpu(tmp_path, capsys):
    config = project(tmp_path, precision="bf16", epochs=8)
    assert main(["train", str(config), "--root", str(tmp_path), "--version", "bf16"]) == 0
    card = read_model_card(tmp_path / "models" / "bf16")
    assert card["training"]["precision"] == "bf16" and card["training"]["device"] == "cpu"
    losses = [r["loss"] for r in history(tmp_path, "bf16")]
    assert losses[-1] < losses[0] / 2
    assert weights(tmp_path / "models" / "bf16")["classifier.weight"].dtype.is_floating_point


@pytest.mark.parametrize(
    "change, message",
    [
        ({"device": "tpu"}, "train.device: unknown value 'tpu'"),
        ({"precision": "fp8"}, "train.precision: unknown value 'fp8'"),
        ({"gradient_accumulation": 0}, "train.gradient_accumulation must be at least 1"),
        ({"select": "best", "average_last": 2}, "cannot be combined"),
    ],
)
def test_training_settings_are_checked(change, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"name": "x", "labels": LABELS, "train": change}, source="t.yaml")


def test_a_device_that_is_not_there_is_a_clear_error(tmp_path, tiny_model, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error is for machines without it")
    config = project(tmp_path, device="cuda")
    assert main(["train", str(config), "--root", str(tmp_path)]) == 1
    assert "device 'cuda' is not available here (torch sees: cpu)" in capsys.readouterr().err
    text = tmp_path / "a.txt"
    text.write_text("对台资企业给予补贴。", encoding="utf-8")
    code = main(["predict", str(tiny_model), str(text), "--output", str(tmp_path / "o.jsonl"), "--device", "cuda"])
    assert code == 1 and "device 'cuda' is not available here" in capsys.readouterr().err


@pytest.mark.skipif(bool(os.environ.get(SKIP_MULTIPROCESS)), reason=f"{SKIP_MULTIPROCESS} is set")
def test_two_processes_train_the_model_one_process_trains_with_accumulation(tmp_path, capsys):
    """torchrun, 2 processes on the CPU (gloo, loopback), batch 4 each: each optimizer step averages
    the gradients of two batches of 4, as one process with batch 4 and gradient_accumulation 2 does."""
    one = tmp_path / "one"
    config = project(one, batch_size=4, gradient_accumulation=2)
    assert main(["train", str(config), "--root", str(one), "--version", "accumulated"]) == 0

    two = tmp_path / "two"
    config = project(two, batch_size=4)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "policy_ner.cli",
        "train",
        str(config),
        "--root",
        str(two),
        "--version",
        "ddp",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # the first process writes and reports, the other is silent
    card = read_model_card(two / "models" / "ddp")
    assert card["training"]["processes"] == 2
    assert [p.name for p in (two / "models").iterdir()] == ["ddp"]

    single, parallel = weights(one / "models" / "accumulated"), weights(two / "models" / "ddp")
    for name in single:
        assert (single[name] - parallel[name]).abs().max() < 1e-4, name
    one_losses = [r["loss"] for r in history(one, "accumulated")]
    two_losses = [r["loss"] for r in history(two, "ddp")]
    assert two_losses == pytest.approx(one_losses, rel=1e-4)
