"""Pretraining on a corpus: the memory-mapped token store and its vocabulary, whole-word masking, and
checkpoints: a run stopped by SIGTERM and resumed ends with the weights of one never stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from policy_ner.config import config_from_dict
from policy_ner.model.encoding import IGNORE_INDEX
from policy_ner.train.pretrain import CHECKPOINT_FILE, LOG_FILE, PretrainInterrupted, PretrainOptions, pretrain
from policy_ner.train.pretrain_data import PretrainDataError, mask_batch, read_corpus

ROOT = Path(__file__).resolve().parent.parent
PROJECT_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "data" / "raw" / "corpus").glob("00*.txt"))]
RARE = "龘"
"""A character only the corpus has, once: below the corpus threshold, so it stays out of the vocabulary."""

CONFIG = config_from_dict(
    {
        "name": "tiny-pretrain",
        "labels": ["ORG", "POLICY_TARGET", "SUBSIDY_AMOUNT"],
        "model": {
            "base": "scratch",
            "hidden_size": 32,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 64,
            "dropout": 0.1,
        },
        "window": {"max_length": 34, "stride": 8},
        "train": {"seed": 5},
    }
)


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """Real text: the work reports of data/raw as an unlabelled corpus, one JSON object per line."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "data" / "raw" / "corpus").glob("02*.txt"))[:5]]
    texts[0] += RARE
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "".join(
            json.dumps({"source": "t", "doc": str(i), "text": t}, ensure_ascii=False) + "\n"
            for i, t in enumerate(texts)
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def options(corpus: Path, **changes) -> PretrainOptions:
    settings = dict(
        steps=24,
        batch_size=8,
        learning_rate=3e-3,
        whole_word=True,
        corpus=str(corpus),
        corpus_min_char_count=2,
        checkpoint_every=10,
        log_every=4,
    )
    return PretrainOptions(**{**settings, **changes})


def train_lines(run_dir: Path) -> list[dict]:
    """The log's loss records, without their timings (which differ between runs)."""
    lines = [json.loads(line) for line in (run_dir / LOG_FILE).read_text(encoding="utf-8").splitlines()]
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "steps_per_second")} for r in lines if r["event"] == "train"
    ]


def test_a_run_interrupted_by_sigterm_and_resumed_ends_with_the_uninterrupted_weights(tmp_path, corpus, one_thread):
    straight = pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "straight", options(corpus), log=lambda _: None)
    assert straight.steps == 24 and (tmp_path / "straight.run" / CHECKPOINT_FILE).is_file()

    def stop_at_step_12(message: str) -> None:
        if message.startswith("step 12/"):
            os.kill(os.getpid(), signal.SIGTERM)  # caught: the step ends, is checkpointed, then the run stops

    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(PretrainInterrupted) as stopped:
        pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "stopped", options(corpus), log=stop_at_step_12)
    assert stopped.value.step == 12 and stopped.value.signal_number == signal.SIGTERM
    assert not (tmp_path / "stopped").exists()
    assert signal.getsignal(signal.SIGTERM) == handler  # the run's handler is only installed while it trains
    store = tmp_path / "stopped.run" / "data" / "tokens.npy"
    built = store.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="pass --resume"):
        pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "stopped", options(corpus), log=lambda _: None)

    resumed = pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "stopped", options(corpus), resume=True, log=lambda _: None)
    assert store.stat().st_mtime_ns == built  # the tokenized data is reused, not rebuilt
    first, second = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(tmp_path / "stopped" / "model.safetensors"),
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert resumed.losses == straight.losses
    assert train_lines(tmp_path / "stopped.run") == train_lines(tmp_path / "straight.run")
    assert [r["step"] for r in train_lines(tmp_path / "stopped.run")] == [4, 8, 12, 16, 20, 24]
    events = [json.loads(line)["event"] for line in (tmp_path / "stopped.run" / LOG_FILE).read_text().splitlines()]
    assert events.count("interrupted") == 1 and events.count("resume") == 1 and events[-1] == "done"
    card = json.loads((tmp_path / "stopped" / "pretrain.json").read_text())
    assert card["resumes"] == 1 and card["steps"] == 24 and card["recipe"]["whole_word"] is True


def test_resume_refuses_other_settings_and_a_missing_checkpoint(tmp_path, corpus, one_thread):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "none", options(corpus), resume=True, log=lambda _: None)

    def stop_at_once(message: str) -> None:
        if message.startswith("step 4/"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(PretrainInterrupted):
        pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "run", options(corpus), log=stop_at_once)
    with pytest.raises(ValueError, match=r"other settings or data \(learning_rate\)"):
        pretrain(
            CONFIG,
            PROJECT_TEXTS,
            tmp_path / "run",
            options(corpus, learning_rate=1e-3),
            resume=True,
            log=lambda _: None,
        )
    # Checkpointing and logging more or less often is not a different run.
    done = pretrain(
        CONFIG,
        PROJECT_TEXTS,
        tmp_path / "run",
        options(corpus, checkpoint_every=7, log_every=6),
        resume=True,
        log=lambda _: None,
    )
    assert done.steps == 24


def test_the_store_is_memory_mapped_and_the_vocabulary_covers_the_project(tmp_path, corpus, one_thread):
    result = pretrain(CONFIG, PROJECT_TEXTS, tmp_path / "model", options(corpus, steps=2), log=lambda _: None)
    data = result.run_dir / "data"
    tokens = np.load(data / "tokens.npy", mmap_mode="r")
    windows = np.load(data / "windows.npy")
    meta = json.loads((data / "meta.json").read_text())
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16
    assert meta["tokens"] == len(tokens) and meta["windows"] == len(windows) and meta["texts"] == len(PROJECT_TEXTS) + 5
    assert windows[:, 1].max() == CONFIG.window.max_length - 2 and windows[:, 1].min() >= 8
    vocab = (result.run_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    first_text = "".join(c for c in PROJECT_TEXTS[0] if not c.isspace())
    begin, length = windows[0]
    assert "".join(vocab[i] for i in tokens[begin : begin + length]) == first_text[:length]
    card = json.loads((result.output / "pretrain.json").read_text())
    assert card["vocabulary"]["size"] == len(vocab) and card["vocabulary"]["project_unknown_rate"] == 0.0
    assert RARE not in vocab and {c for c in "".join(PROJECT_TEXTS) if not c.isspace()} <= set(vocab)
    assert card["vocabulary"]["corpus_unknown_rate"] > 0 and card["unknown_tokens"] >= 1
    assert card["corpus"]["texts"] == 5 and len(card["corpus"]["sha256"]) == 64


def test_whole_word_masking_takes_every_token_of_a_chosen_word():
    rows, width = 64, 40
    ids = np.arange(10, 10 + rows * width).reshape(rows, width) % 900 + 10
    ids[:, 0], ids[:, -1] = 2, 3
    attention = np.ones((rows, width), dtype=np.int64)
    starts = np.zeros((rows, width), dtype=np.int64)
    starts[:, ::3] = 1  # three-token words
    starts[:, -1] = 1
    batch = mask_batch(
        ids,
        attention,
        starts,
        probability=0.3,
        mask_id=4,
        vocab_size=1000,
        special_ids=[0, 1, 2, 3, 4],
        generator=torch.Generator().manual_seed(1),
    )
    scored = (batch.labels != IGNORE_INDEX).numpy()
    words = scored[:, 3:39].reshape(rows, 12, 3)
    assert ((words.sum(axis=2) == 0) | (words.sum(axis=2) == 3)).all()
    assert 0.2 < words.mean() < 0.4 and not scored[:, 0].any() and not scored[:, -1].any()
    assert (batch.labels.numpy()[scored] == ids[scored]).all()
    assert 0.7 < (batch.input_ids.numpy()[scored] == 4).mean() < 0.9

    single = mask_batch(
        ids,
        attention,
        np.ones_like(starts),
        probability=0.3,
        mask_id=4,
        vocab_size=1000,
        special_ids=[0, 1, 2, 3, 4],
        generator=torch.Generator().manual_seed(1),
    )
    per_token = (single.labels != IGNORE_INDEX).numpy()[:, 3:39].reshape(rows, 12, 3).sum(axis=2)
    assert ((per_token == 1) | (per_token == 2)).any()


def test_corpus_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "一"}\n{"doc": "no text"}\n', encoding="utf-8")
    with pytest.raises(PretrainDataError, match=r"bad.jsonl:2: expected an object with a \"text\" string"):
        list(read_corpus(path))
    path.write_text('{"text": "一"}\n\n{oops\n', encoding="utf-8")
    with pytest.raises(PretrainDataError, match=r"bad.jsonl:3: not JSON"):
        list(read_corpus(path))
