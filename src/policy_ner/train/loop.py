"""The training loop: AdamW with linear warm-up and decay over framed windows, re-cut every epoch when
`train.window_jitter` is on, with optional weight averaging over the last epochs or selection of the
best epoch on dev, early stopping, and a checkpoint after every epoch (`checkpoints`).

accelerate places the model on the configured device, runs mixed precision and, when the command is
started by `accelerate launch` or `torchrun`, trains one model in several processes (DDP): each
process takes every N-th batch of the same shuffled order, so N processes with batch size B step
through the batches one process with batch size N x B would.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from ..config import Config, TrainConfig
from ..model.devices import resolve_device
from ..model.encoding import IGNORE_INDEX
from .checkpoints import Checkpoints
from .dataset import collate, count_windows, training_windows, window_columns

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the run stops before anything is saved."""


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    seconds: float
    learning_rate: float
    dev_f1: float | None = None
    """Strict micro F1 on dev after this epoch, when the run selects or stops on it."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_accelerator(train: TrainConfig):
    """The accelerate `Accelerator` for `train.device` and `train.precision`, in this process's place
    among the processes `accelerate launch` or `torchrun` started (one when started directly)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    device = resolve_device(train.device)
    if train.precision == "fp16" and device.type == "cpu":
        raise ValueError("train.precision fp16 needs a GPU (loss scaling); on the CPU use bf16 or fp32")
    if PartialState._shared_state and PartialState().num_processes == 1:
        # accelerate keeps one process-wide state and refuses a second Accelerator with another
        # precision; one process may train several models (cv folds, tests), each with its own.
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=device.type == "cpu", mixed_precision=MIXED_PRECISION[train.precision])


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


def process_batches(order: list[int], batch_size: int, process: int, processes: int) -> list[list[int]]:
    """This process's batches of `order`: every `processes`-th one, starting at its index. Every process
    gets as many (the last ones repeat the epoch's first batches), since DDP steps them together."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    steps = math.ceil(len(batches) / processes)
    return [batches[j % len(batches)] for j in range(process, steps * processes, processes)]


class BestEpoch:
    """Dev F1 per epoch: the best epoch's weights (a CPU copy) and the epochs since it improved."""

    def __init__(self):
        self.f1, self.epoch, self.weights, self.stale = -1.0, 0, None, 0

    def update(self, epoch: int, f1: float, model) -> bool:
        if f1 > self.f1:
            self.f1, self.epoch, self.stale = f1, epoch, 0
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return True
        self.stale += 1
        return False


def fit(
    model,
    examples: datasets.Dataset,
    tokenizer,
    config: Config,
    log=print,
    prepare_batch=None,
    *,
    accelerator=None,
    score: Callable[[object], float] | None = None,
    checkpoints: Checkpoints | None = None,
) -> list[EpochRecord]:
    """Fine-tune `model` in place on windows of `examples`; returns the per-epoch record.

    `prepare_batch(inputs, labels)`, when given, rewrites each batch before the forward pass
    (pretraining masks tokens there). `score(model)` gives dev F1 after each epoch (for
    `train.select: best` and `train.patience`). With `checkpoints`, every epoch is checkpointed and a
    run whose checkpoint is there goes on from it. The model ends on the accelerator's device."""
    t, w = config.train, config.window
    accelerator = accelerator or make_accelerator(t)
    generator = torch.Generator().manual_seed(t.seed)
    shift_rng = np.random.default_rng(t.seed)
    step = w.max_length - 2 - w.stride
    batches = math.ceil(count_windows(examples, w.max_length, w.stride, w.pack) / t.batch_size)
    steps_per_epoch = math.ceil(batches / accelerator.num_processes)
    updates_per_epoch = math.ceil(steps_per_epoch / t.gradient_accumulation)
    total_updates = updates_per_epoch * t.epochs
    optimizer = torch.optim.AdamW(parameter_groups(model, t.weight_decay), lr=t.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_updates * t.warmup_ratio), total_updates)
    history: list[EpochRecord] = []
    averaged = WeightAverage(model) if t.average_last > 1 else None
    best = BestEpoch() if score is not None else None
    first_epoch = 1
    saved = checkpoints.latest() if checkpoints is not None else None
    if saved is not None:
        model.load_state_dict(saved.tensors["model"])
        optimizer.load_state_dict(saved.tensors["optimizer"])
        scheduler.load_state_dict(saved.state["scheduler"])
        generator.set_state(saved.tensors["generator"])
        torch.set_rng_state(saved.tensors["torch_rng"])
        shift_rng.bit_generator.state = saved.state["shift_rng"]
        random.setstate(_as_random_state(saved.state["python_rng"]))
        history = [EpochRecord(**record) for record in saved.state["history"]]
        if averaged is not None:
            averaged.restore(saved.tensors["average"], saved.state["average_count"])
        if best is not None:
            best.f1, best.epoch, best.stale = saved.state["best"]
            best.weights = saved.tensors["best_weights"]
        first_epoch = saved.epoch + 1
        log(f"resuming after epoch {saved.epoch} of {t.epochs} from {saved.folder}")
    prepared, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    class_weights = entity_class_weights(config).to(device) if t.entity_weight != 1.0 else None
    prepared.train()
    for epoch in range(first_epoch, t.epochs + 1):
        started, losses = time.perf_counter(), []
        shifts = shift_rng.integers(0, step, size=len(examples)).tolist() if t.window_jitter else None
        windows = window_columns(training_windows(examples, tokenizer, w.max_length, w.stride, shifts, w.pack))
        order = torch.randperm(len(windows), generator=generator).tolist()
        mine = process_batches(order, t.batch_size, accelerator.process_index, accelerator.num_processes)
        for index, batch in enumerate(mine):
            group_start = index - index % t.gradient_accumulation
            group_size = min(group_start + t.gradient_accumulation, len(mine)) - group_start
            updates = index == group_start + group_size - 1
            inputs, gold = collate(windows[batch], tokenizer.pad_token_id)
            if prepare_batch is not None:
                inputs, gold = prepare_batch(inputs, gold)
            inputs, gold = {k: v.to(device) for k, v in inputs.items()}, gold.to(device)
            with contextlib.nullcontext() if updates else accelerator.no_sync(prepared):
                loss = _loss(prepared, inputs, gold, class_weights)
                accelerator.backward(loss / group_size)
            losses.append(loss.item())
            if updates:
                accelerator.clip_grad_norm_(prepared.parameters(), t.max_grad_norm)
                optimizer.step()
                if not optimizer.step_was_skipped:  # fp16 loss scaling skips a step that overflowed
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        mean_loss = accelerator.gather(torch.tensor([float(np.mean(losses))], device=device)).mean().item()
        dev_f1 = None
        if score is not None:
            prepared.eval()
            dev_f1 = round(score(accelerator.unwrap_model(prepared)), 5)
            prepared.train()
        record = EpochRecord(
            epoch, round(mean_loss, 5), round(time.perf_counter() - started, 2), scheduler.get_last_lr()[0], dev_f1
        )
        if not math.isfinite(record.loss):
            raise TrainingDiverged(
                f"training loss is {record.loss} in epoch {epoch} over {len(losses)} batch(es); nothing was saved "
                "(lower train.learning_rate, or check that the training documents hold spans)"
            )
        history.append(record)
        if averaged is not None and epoch > t.epochs - t.average_last:
            averaged.add(model)
        improved = best.update(epoch, dev_f1, model) if best is not None and dev_f1 is not None else False
        if checkpoints is not None and accelerator.is_main_process:
            checkpoints.save(
                epoch,
                {
                    "history": [r.__dict__ for r in history],
                    "scheduler": scheduler.state_dict(),
                    "shift_rng": shift_rng.bit_generator.state,
                    "python_rng": random.getstate(),
                    "average_count": averaged.count if averaged is not None else 0,
                    "best": [best.f1, best.epoch, best.stale] if best is not None else None,
                },
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "average": averaged.sums if averaged is not None else {},
                    "best_weights": best.weights if best is not None else None,
                },
            )
        accelerator.wait_for_everyone()
        dev = f"  dev F1 {dev_f1:.4f}{' (best)' if improved else ''}" if dev_f1 is not None else ""
        log(f"epoch {epoch}/{t.epochs}  loss {record.loss:.4f}{dev}  {record.seconds:.1f}s")
        if best is not None and t.patience and best.stale >= t.patience:
            log(f"early stop: dev F1 has not improved for {t.patience} epoch(s) since epoch {best.epoch}")
            break
    accelerator.unwrap_model(prepared, keep_fp32_wrapper=False)
    if best is not None and t.select == "best" and best.weights is not None:
        model.load_state_dict(best.weights)
        log(f"kept epoch {best.epoch} (dev F1 {best.f1:.4f}, the best)")
    elif averaged is not None:
        averaged.load_into(model)
    model.eval()
    return history


def _loss(model, inputs: dict, gold: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    if class_weights is None:
        return model(**inputs, labels=gold).loss
    logits = model(**inputs).logits
    return torch.nn.functional.cross_entropy(
        logits.view(-1, logits.size(-1)).float(), gold.view(-1), weight=class_weights, ignore_index=IGNORE_INDEX
    )


def _as_random_state(value) -> tuple:
    """`random.getstate()` after a JSON round trip (its tuples came back as lists)."""
    version, internal, gauss = value
    return version, tuple(internal), gauss


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

    def restore(self, sums: dict[str, torch.Tensor], count: int) -> None:
        self.sums, self.count = dict(sums), count

    def load_into(self, model) -> None:
        model.load_state_dict({name: total / self.count for name, total in self.sums.items()}, strict=False)
