"""Masked-language-model pretraining of the encoder, on the project's texts and an unlabelled corpus,
in steps that can be interrupted and resumed.

`policy-ner pretrain CONFIG --output DIR [--corpus data/pretrain/corpus.jsonl]` trains `BertForMaskedLM`
with the config's encoder size on every text the config's data section names (the annotated
documents and `data.vocab_sources`) and, with `--corpus`, on the corpus too; then writes a Hugging Face
checkpoint that a config's `model.base` can name. Pretraining sees characters only; the feature
embeddings (features/) are learned during fine-tuning. With a pretrained `model.base` in the config,
pretraining continues from that checkpoint (domain-adaptive pretraining).

On two cores a run over the corpus takes hours, so it is made of steps that survive an interruption:
the run folder (`--run-dir`, default `DIR.run` beside DIR) holds the vocabulary, the tokenized corpus
(pretrain_data.TokenStore), `checkpoint.pt` (written every `--checkpoint-every` steps, at the end, and
when SIGTERM or SIGINT arrives: weights, optimizer, schedule, torch's random state and the step, which
is also the data position) and `log.jsonl` (loss, learning rate and time). `--resume` continues from
the checkpoint and ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import resource
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    get_linear_schedule_with_warmup,
)

from ..config import Config
from ..files import atomic_directory, atomic_write_json, atomic_write_text, sha256_file
from ..model.encoding import IGNORE_INDEX
from ..model.network import char_tokenizer, is_scratch, scratch_encoder_settings
from .loop import parameter_groups, seed_everything
from .pretrain_data import (
    TokenStore,
    WindowOrder,
    char_counts,
    fingerprint,
    mask_batch,
    open_store,
    pretraining_vocab,
    read_corpus,
    step_generator,
    unknown_rate,
    window_batch,
)

PRETRAIN_CARD_FILE = "pretrain.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.jsonl"
VOCAB_FILE = "vocab.txt"


@dataclass(frozen=True)
class PretrainOptions:
    steps: int = 0
    """Optimizer steps; 0 means as many as `epochs` passes over the windows take."""
    epochs: float = 20.0
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mask_probability: float = 0.15
    whole_word: bool = False
    """Mask whole jieba words (all characters of a chosen word) instead of single characters."""
    corpus: str | None = None
    """JSONL corpus (`{"text": ...}` per line) pretrained on besides the project's texts."""
    corpus_min_char_count: int = 5
    """Corpus characters seen fewer times stay out of a scratch vocabulary (project characters never do)."""
    checkpoint_every: int = 500
    log_every: int = 50

    def __post_init__(self):
        for name in ("batch_size", "checkpoint_every", "log_every", "corpus_min_char_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.steps < 0 or (not self.steps and self.epochs <= 0):
            raise ValueError("--steps must be at least 0 and --epochs positive")

    def recipe(self) -> dict:
        """The settings that decide the result (not when it is checkpointed or logged): a resumed run
        must have the same."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("checkpoint_every", "log_every")}


@dataclass(frozen=True)
class PretrainResult:
    output: Path
    run_dir: Path
    steps: int
    seconds: float
    peak_memory_mb: float
    losses: list[float]
    """Mean loss of each pass over the windows (epoch)."""


class PretrainInterrupted(Exception):
    """SIGTERM or SIGINT stopped a run after checkpointing it; `--resume` continues it."""

    def __init__(self, step: int, checkpoint: Path, signal_number: int):
        super().__init__(
            f"interrupted by {signal.Signals(signal_number).name} after step {step}; "
            f"checkpoint {checkpoint}; continue with the same command and --resume"
        )
        self.step, self.checkpoint, self.signal_number = step, checkpoint, signal_number


class StopSignals:
    """While active, SIGTERM and SIGINT only note that they came (`received`), so that the step in
    progress ends and is checkpointed instead of being lost."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> StopSignals:
        for number in self.SIGNALS:
            self._previous[number] = signal.signal(number, self._note)
        return self

    def _note(self, number, frame) -> None:
        self.received = number

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


@dataclass
class RunState:
    """What a checkpoint holds besides the tensors' states."""

    step: int = 0
    seconds: float = 0.0
    epoch_losses: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    """Epoch -> [sum of step losses, steps]."""
    log_bytes: int = 0
    resumes: int = 0

    def add_loss(self, epoch: int, loss: float) -> None:
        total = self.epoch_losses.setdefault(epoch, [0.0, 0])
        total[0] += loss
        total[1] += 1

    def mean_losses(self) -> list[float]:
        return [round(s / n, 5) for _, (s, n) in sorted(self.epoch_losses.items())]


def pretrain(
    config: Config,
    texts: Sequence[str],
    output: Path,
    options: PretrainOptions,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    log=print,
) -> PretrainResult:
    """Pretrain on `texts` (the project's) and `options.corpus`; write the checkpoint to `output`."""
    output = Path(output)
    run_dir = Path(run_dir) if run_dir else output.parent / f"{output.name}.run"
    checkpoint_path, log_path = run_dir / CHECKPOINT_FILE, run_dir / LOG_FILE
    check_run_folders(output, checkpoint_path, resume)
    seed = config.train.seed
    seed_everything(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    corpus = Path(options.corpus) if options.corpus else None
    corpus_sha = sha256_file(corpus) if corpus else None
    tokenizer, vocabulary = pretraining_tokenizer(config, texts, corpus, options, run_dir, resume)
    max_length = config.window.max_length
    key = {
        "vocabulary": fingerprint(*sorted(tokenizer.get_vocab())),
        "project_texts": fingerprint(*texts),
        "corpus_sha256": corpus_sha,
        "content_length": max_length - 2,
        "whole_word": options.whole_word,
    }
    store = open_store(
        run_dir / "data",
        key,
        lambda: itertools.chain(texts, read_corpus(corpus) if corpus else ()),
        tokenizer,
        max_length - 2,
        options.whole_word,
        log=log,
    )
    model = masked_lm(config, tokenizer, max_length)
    total_steps = options.steps or math.ceil(options.epochs * len(store) / options.batch_size)
    optimizer = torch.optim.AdamW(parameter_groups(model, options.weight_decay), lr=options.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * options.warmup_ratio), total_steps)
    recipe = {
        **options.recipe(),
        "steps": total_steps,
        "seed": seed,
        "max_length": max_length,
        "base_model": config.model.base,
        "encoder": encoder_shape(model),
        "data": key,
    }
    state = RunState()
    if resume:
        state = load_checkpoint(checkpoint_path, recipe, model, optimizer, scheduler)
        truncate(log_path, state.log_bytes)
        state.resumes += 1
    else:
        log_path.unlink(missing_ok=True)
    log(
        f"pretraining {encoder_shape(model)} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters) "
        f"on {store.meta['texts']:,} texts, {store.meta['tokens']:,} tokens in {len(store):,} windows; "
        f"vocabulary {vocabulary['size']:,}; steps {state.step:,} -> {total_steps:,} of {options.batch_size}"
    )
    append_log(
        log_path,
        {
            "event": "resume" if resume else "start",
            "step": state.step,
            "seconds": round(state.seconds, 2),
            "total_steps": total_steps,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    run_steps(
        model,
        optimizer,
        scheduler,
        store,
        tokenizer,
        options,
        seed,
        total_steps,
        state,
        checkpoint_path,
        log_path,
        recipe,
        log,
    )
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with atomic_directory(output) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        atomic_write_json(
            scratch / PRETRAIN_CARD_FILE,
            pretrain_card(config, texts, corpus, corpus_sha, options, store, vocabulary, recipe, state, run_dir, peak),
        )
    log(
        f"wrote {output} ({state.seconds:.0f}s of training, peak {peak} MB); fine-tune from it with model.base: {output}"
    )
    return PretrainResult(output, run_dir, state.step, round(state.seconds, 1), peak, state.mean_losses())


def check_run_folders(output: Path, checkpoint: Path, resume: bool) -> None:
    if output.exists():
        raise FileExistsError(f"{output} already exists; choose another --output")
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint to resume from")
    if not resume and checkpoint.exists():
        raise FileExistsError(f"{checkpoint} exists: pass --resume to continue that run, or choose another --run-dir")


def pretraining_tokenizer(
    config: Config, texts: Sequence[str], corpus: Path | None, options: PretrainOptions, run_dir: Path, resume: bool
):
    """The tokenizer, and what its vocabulary covers. A scratch vocabulary is the project's characters
    and the corpus's frequent ones (`pretrain_data.pretraining_vocab`), written to the run folder so that
    a resumed run uses it even if the texts have changed since; a pretrained base keeps its own."""
    project = char_counts(texts)
    corpus_counts = char_counts(read_corpus(corpus)) if corpus else None
    if not is_scratch(config):
        tokenizer = AutoTokenizer.from_pretrained(config.model.base)
    elif resume:
        tokenizer = char_tokenizer((run_dir / VOCAB_FILE).read_text(encoding="utf-8").split("\n"))
    else:
        vocab = pretraining_vocab(
            project, corpus_counts or Counter(), config.model.min_char_count, options.corpus_min_char_count
        )
        atomic_write_text(run_dir / VOCAB_FILE, "\n".join(vocab))
        tokenizer = char_tokenizer(vocab)
    report = {
        "size": len(tokenizer),
        "project_min_char_count": config.model.min_char_count,
        "corpus_min_char_count": options.corpus_min_char_count if corpus else None,
        "project_characters": len(project),
        "project_unknown_rate": unknown_rate(project, tokenizer),
    }
    if corpus_counts is not None:
        report.update(corpus_characters=len(corpus_counts), corpus_unknown_rate=unknown_rate(corpus_counts, tokenizer))
    return tokenizer, report


def masked_lm(config: Config, tokenizer, max_length: int):
    if is_scratch(config):
        return BertForMaskedLM(BertConfig(**scratch_encoder_settings(config, tokenizer, max_length)))
    model = AutoModelForMaskedLM.from_pretrained(config.model.base)
    if not (hasattr(model, "bert") and hasattr(model, "cls")):
        raise ValueError(
            f"{config.model.base}: pretraining needs a BERT masked-LM checkpoint (found {type(model).__name__})"
        )
    return model


def encoder_shape(model) -> dict:
    c = model.config
    return {
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_layers": c.num_hidden_layers,
        "num_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
    }


def masked_lm_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the masked positions only: the vocabulary-wide output layer runs on the ~15%
    of positions that are scored instead of on all of them (BertForMaskedLM's way), which more than
    halves the time of a step with this small encoder."""
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    scored = labels != IGNORE_INDEX
    if not scored.any():
        return hidden.sum() * 0.0
    return torch.nn.functional.cross_entropy(model.cls(hidden[scored]), labels[scored])


def run_steps(
    model,
    optimizer,
    scheduler,
    store: TokenStore,
    tokenizer,
    options: PretrainOptions,
    seed: int,
    total_steps: int,
    state: RunState,
    checkpoint_path: Path,
    log_path: Path,
    recipe: dict,
    log,
) -> None:
    order = WindowOrder(len(store), options.batch_size, seed)
    special = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    special_ids = sorted(set(tokenizer.all_special_ids))
    interval_loss, interval_steps, interval_seconds = 0.0, 0, 0.0
    model.train()
    with StopSignals() as stop:
        while state.step < total_steps:
            started = time.perf_counter()
            step = state.step
            ids, attention, starts = window_batch(store, order.rows(step), special)
            batch = mask_batch(
                ids,
                attention,
                starts,
                probability=options.mask_probability,
                mask_id=tokenizer.mask_token_id,
                vocab_size=len(tokenizer),
                special_ids=special_ids,
                generator=step_generator(seed, step),
            )
            loss = masked_lm_loss(model, batch.input_ids, batch.attention_mask, batch.labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            elapsed = time.perf_counter() - started
            state.step += 1
            state.seconds += elapsed
            state.add_loss(int(order.epoch_of(step)), value)
            interval_loss, interval_steps, interval_seconds = (
                interval_loss + value,
                interval_steps + 1,
                interval_seconds + elapsed,
            )
            if state.step % options.log_every == 0 or state.step == total_steps:
                append_log(
                    log_path,
                    {
                        "event": "train",
                        "step": state.step,
                        "epoch": round(order.epoch_of(state.step), 4),
                        "loss": round(interval_loss / interval_steps, 5),
                        "learning_rate": scheduler.get_last_lr()[0],
                        "seconds": round(state.seconds, 2),
                        "steps_per_second": round(interval_steps / interval_seconds, 3),
                    },
                )
                log(
                    f"step {state.step}/{total_steps}  loss {interval_loss / interval_steps:.4f}  "
                    f"{interval_steps / interval_seconds:.2f} steps/s"
                )
                interval_loss, interval_steps, interval_seconds = 0.0, 0, 0.0
            if stop.received:
                append_log(
                    log_path,
                    {
                        "event": "interrupted",
                        "step": state.step,
                        "seconds": round(state.seconds, 2),
                        "signal": signal.Signals(stop.received).name,
                    },
                )
            if stop.received or state.step % options.checkpoint_every == 0 or state.step == total_steps:
                save_checkpoint(checkpoint_path, log_path, recipe, model, optimizer, scheduler, state)
            if stop.received:
                raise PretrainInterrupted(state.step, checkpoint_path, stop.received)
    model.eval()
    append_log(log_path, {"event": "done", "step": state.step, "seconds": round(state.seconds, 2)})


def append_log(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def truncate(path: Path, size: int) -> None:
    """Drop the log lines written after the checkpoint: those steps run again."""
    if path.exists():
        with open(path, "r+b") as handle:
            handle.truncate(size)


def save_checkpoint(path: Path, log_path: Path, recipe: dict, model, optimizer, scheduler, state: RunState) -> None:
    """Everything a resumed run needs, written to a temporary file and renamed over the last checkpoint.
    The log is measured after its "checkpoint" line: a resumed run keeps the lines up to there."""
    append_log(log_path, {"event": "checkpoint", "step": state.step, "seconds": round(state.seconds, 2)})
    state.log_bytes = log_path.stat().st_size
    payload = {
        "recipe": json.dumps(recipe, sort_keys=True),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "state": json.dumps(dataclasses.asdict(state)),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, recipe: dict, model, optimizer, scheduler) -> RunState:
    payload = torch.load(path, weights_only=True)
    saved = json.loads(payload["recipe"])
    current = json.loads(json.dumps(recipe, sort_keys=True))
    if saved != current:
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ValueError(
            f"{path}: the run was started with other settings or data ({', '.join(changed)}); "
            "resume it with the command that started it, or start a new run"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["torch_rng"])
    state = json.loads(payload["state"])
    state["epoch_losses"] = {int(k): v for k, v in state["epoch_losses"].items()}
    return RunState(**state)


def pretrain_card(
    config: Config,
    texts: Sequence[str],
    corpus: Path | None,
    corpus_sha: str | None,
    options: PretrainOptions,
    store: TokenStore,
    vocabulary: dict,
    recipe: dict,
    state: RunState,
    run_dir: Path,
    peak_memory_mb: float,
) -> dict:
    passes = state.step * options.batch_size / len(store)
    return {
        "config_name": config.name,
        "base_model": config.model.base,
        "encoder": recipe["encoder"],
        "texts": len(texts),
        "characters": sum(map(len, texts)),
        "corpus": None
        if corpus is None
        else {"path": str(corpus), "sha256": corpus_sha, "texts": store.meta["texts"] - len(texts)},
        "vocabulary": vocabulary,
        "tokens": store.meta["tokens"],
        "unknown_tokens": store.meta["unknown_tokens"],
        "windows": len(store),
        "recipe": {
            k: recipe[k]
            for k in (
                "batch_size",
                "learning_rate",
                "warmup_ratio",
                "weight_decay",
                "max_grad_norm",
                "mask_probability",
                "whole_word",
                "seed",
                "max_length",
            )
        },
        "steps": state.step,
        "epochs": options.epochs if not options.steps else round(passes, 3),
        "passes": round(passes, 3),
        "losses": state.mean_losses(),
        "seconds": round(state.seconds, 1),
        "resumes": state.resumes,
        "peak_memory_mb": peak_memory_mb,
        "run_dir": str(run_dir),
        "log": str(run_dir / LOG_FILE),
        "learning_rate": options.learning_rate,
        "mask_probability": options.mask_probability,
    }
