"""The training loop: AdamW with linear warm-up and decay over framed windows, re-cut every epoch when
`train.window_jitter` is on, with optional weight averaging over the last epochs."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from ..config import Config
from ..model.encoding import IGNORE_INDEX
from .dataset import collate, count_windows, training_windows, window_columns


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the run stops before anything is saved."""


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    seconds: float
    learning_rate: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on the weight matrices, none on biases and LayerNorm (as BERT)."""
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    return [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]


def fit(
    model, examples: datasets.Dataset, tokenizer, config: Config, log=print, prepare_batch=None
) -> list[EpochRecord]:
    """Fine-tune `model` in place on windows of `examples`; returns the per-epoch record.

    `prepare_batch(inputs, labels)`, when given, rewrites each batch before the forward pass
    (pretraining masks tokens there)."""
    t, w = config.train, config.window
    generator = torch.Generator().manual_seed(t.seed)
    shift_rng = np.random.default_rng(t.seed)
    step = w.max_length - 2 - w.stride
    steps_per_epoch = math.ceil(count_windows(examples, w.max_length, w.stride) / t.batch_size)
    total_steps = steps_per_epoch * t.epochs
    optimizer = torch.optim.AdamW(parameter_groups(model, t.weight_decay), lr=t.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * t.warmup_ratio), total_steps)
    history = []
    averaged = WeightAverage(model) if t.average_last > 1 else None
    class_weights = entity_class_weights(config) if t.entity_weight != 1.0 else None
    model.train()
    for epoch in range(1, t.epochs + 1):
        started, losses = time.perf_counter(), []
        shifts = shift_rng.integers(0, step, size=len(examples)).tolist() if t.window_jitter else None
        windows = window_columns(training_windows(examples, tokenizer, w.max_length, w.stride, shifts))
        order = torch.randperm(len(windows), generator=generator).tolist()
        for i in range(0, len(order), t.batch_size):
            inputs, gold = collate(windows[order[i : i + t.batch_size]], tokenizer.pad_token_id)
            if prepare_batch is not None:
                inputs, gold = prepare_batch(inputs, gold)
            if class_weights is None:
                loss = model(**inputs, labels=gold).loss
            else:
                logits = model(**inputs).logits
                loss = torch.nn.functional.cross_entropy(
                    logits.view(-1, logits.size(-1)), gold.view(-1), weight=class_weights, ignore_index=IGNORE_INDEX
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        record = EpochRecord(
            epoch, round(float(np.mean(losses)), 5), round(time.perf_counter() - started, 2), scheduler.get_last_lr()[0]
        )
        if not math.isfinite(record.loss):
            raise TrainingDiverged(
                f"training loss is {record.loss} in epoch {epoch} over {len(losses)} batch(es); nothing was saved "
                "(lower train.learning_rate, or check that the training documents hold spans)"
            )
        history.append(record)
        log(f"epoch {epoch}/{t.epochs}  loss {record.loss:.4f}  {record.seconds:.1f}s")
        if averaged is not None and epoch > t.epochs - t.average_last:
            averaged.add(model)
    if averaged is not None:
        averaged.load_into(model)
    model.eval()
    return history


def entity_class_weights(config: Config) -> torch.Tensor:
    """Loss weight per tag: 1 for `O`, `train.entity_weight` for every entity tag."""
    return torch.tensor([1.0 if tag == "O" else config.train.entity_weight for tag in config.tags])


class WeightAverage:
    """Running mean of a model's floating-point weights, taken at the end of chosen epochs."""

    def __init__(self, model):
        self.sums = {
            name: torch.zeros_like(value) for name, value in model.state_dict().items() if value.is_floating_point()
        }
        self.count = 0

    def add(self, model) -> None:
        state = model.state_dict()
        for name, total in self.sums.items():
            total += state[name].detach()
        self.count += 1

    def load_into(self, model) -> None:
        model.load_state_dict({name: total / self.count for name, total in self.sums.items()}, strict=False)
