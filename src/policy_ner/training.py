"""Config + annotations -> fine-tuned token classifier in `models/<version>/` and a run record in
`training/<version>/`, both written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import transformers
import yaml
from transformers import get_linear_schedule_with_warmup

from .augment import augment, source_doc_id
from .annotations import Document, load_documents, resolve_annotation_files
from .config import Config, DataConfig
from .dataset import (IGNORE_INDEX, TrainingExample, count_windows, model_inputs, pad_batch, training_examples,
                      training_windows)
from .evaluation import EvaluationResult, PredictedDocument, evaluate
from .features import Featurizer
from .files import atomic_directory, atomic_write_json, atomic_write_text, sha256_file
from .inference import Predictor, set_threads
from .registry import MODEL_CARD_FILE, MODEL_SETTINGS_FILE, read_model_card
from .modeling import crf_parameters, is_scratch, load_base_tokenizer, new_model
from .reporting import model_card_markdown


@dataclass(frozen=True)
class DataSplit:
    train: list[Document]
    dev: list[Document]


def split_documents(documents: Sequence[Document], data: DataConfig) -> DataSplit:
    """Deterministic split by document: explicit `dev_documents`, else the `dev_fraction` of
    documents whose salted doc-id hash sorts first. Independent of file and task order."""
    if data.dev_documents:
        unknown = sorted(set(data.dev_documents) - {d.doc_id for d in documents})
        if unknown:
            raise ValueError(f"data.dev_documents names unknown doc ids: {', '.join(unknown)}")
        dev_ids = set(data.dev_documents)
    else:
        n_dev = math.ceil(len(documents) * data.dev_fraction) if data.dev_fraction else 0
        if len(documents) > 1:
            n_dev = min(n_dev, len(documents) - 1)
        ranked = sorted(documents, key=lambda d: hashlib.sha256(f"{data.split_seed}:{d.doc_id}".encode()).hexdigest())
        dev_ids = {d.doc_id for d in ranked[:n_dev]}
    return DataSplit(train=[d for d in documents if d.doc_id not in dev_ids],
                     dev=[d for d in documents if d.doc_id in dev_ids])


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    seconds: float
    learning_rate: float


@dataclass
class TrainingResult:
    version: str
    model_dir: Path
    run_dir: Path
    split: DataSplit
    dev_metrics: EvaluationResult | None
    train_seconds: float
    peak_memory_mb: float
    history: list[EpochRecord] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(model, examples: Sequence[TrainingExample], tokenizer, config: Config, log=print,
        prepare_batch=None) -> list[EpochRecord]:
    """Fine-tune `model` in place on windows of `examples`; returns the per-epoch record.

    `prepare_batch(inputs, labels)`, when given, rewrites each batch before the forward pass
    (pretraining masks tokens there)."""
    t, w = config.train, config.window
    generator = torch.Generator().manual_seed(t.seed)
    shift_rng = np.random.default_rng(t.seed)
    step = w.max_length - 2 - w.stride
    steps_per_epoch = math.ceil(count_windows(examples, w.max_length, w.stride) / t.batch_size)
    total_steps = steps_per_epoch * t.epochs
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": t.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=t.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * t.warmup_ratio), total_steps)
    history = []
    averaged = WeightAverage(model) if t.average_last > 1 else None
    class_weights = entity_class_weights(config) if t.entity_weight != 1.0 else None
    model.train()
    for epoch in range(1, t.epochs + 1):
        started, losses = time.perf_counter(), []
        shifts = shift_rng.integers(0, step, size=len(examples)).tolist() if t.window_jitter else None
        columns = training_windows(examples, tokenizer, w.max_length, w.stride, shifts).to_dict()
        order = torch.randperm(len(columns["input_ids"]), generator=generator).tolist()
        for i in range(0, len(order), t.batch_size):
            batch = order[i:i + t.batch_size]
            inputs = model_inputs([columns["input_ids"][j] for j in batch],
                                  [columns["token_type_ids"][j] for j in batch], tokenizer.pad_token_id)
            gold = pad_batch([columns["labels"][j] for j in batch], IGNORE_INDEX)
            if prepare_batch is not None:
                inputs, gold = prepare_batch(inputs, gold)
            if class_weights is None:
                loss = model(**inputs, labels=gold).loss
            else:
                logits = model(**inputs).logits
                loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), gold.view(-1),
                                                         weight=class_weights, ignore_index=IGNORE_INDEX)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        record = EpochRecord(epoch, round(float(np.mean(losses)), 5), round(time.perf_counter() - started, 2),
                             scheduler.get_last_lr()[0])
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
        self.sums = {name: torch.zeros_like(value) for name, value in model.state_dict().items()
                     if value.is_floating_point()}
        self.count = 0

    def add(self, model) -> None:
        state = model.state_dict()
        for name, total in self.sums.items():
            total += state[name].detach()
        self.count += 1

    def load_into(self, model) -> None:
        model.load_state_dict({name: total / self.count for name, total in self.sums.items()}, strict=False)


@dataclass
class FittedModel:
    """A model fine-tuned on some documents, with what it took."""

    model: object
    tokenizer: object
    featurizer: Featurizer
    history: list[EpochRecord]
    seconds: float
    windows: int

    def predictor(self, config: Config, version: str = "") -> Predictor:
        return Predictor(self.model, self.tokenizer, config.tags, config.window.max_length, config.window.stride,
                         features=self.featurizer, version=version)


def vocabulary_texts(config: Config, documents: Sequence[Document], root: Path) -> tuple[list[str], list[Path]]:
    """The texts whose characters make a scratch vocabulary: the annotated documents and the
    `data.vocab_sources` files (also returned, for the model card)."""
    files = [p for pattern in config.data.vocab_sources for p in sorted(Path(root).glob(pattern))]
    return [d.text for d in documents] + [p.read_text(encoding="utf-8-sig") for p in files], files


def fit_model(config: Config, train_documents: Sequence[Document], vocab_texts: Sequence[str],
              log=print) -> FittedModel:
    """A new model (scratch or from `model.base`) fine-tuned on `train_documents`."""
    seed_everything(config.train.seed)
    tokenizer = load_base_tokenizer(config, vocab_texts)
    t = config.train
    documents = [*train_documents, *augment(train_documents, t.augment_copies, t.augment_probability, t.seed)]
    featurizer = Featurizer(tuple(config.model.features), tuple(config.labels)).fitted(train_documents)
    examples = training_examples(documents, tokenizer, config.tags,
                                 featurizer.training_values(documents, group=source_doc_id))
    n_windows = count_windows(examples, config.window.max_length, config.window.stride)
    model = new_model(config, tokenizer, config.window.max_length, featurizer.sizes)
    log(f"{n_windows} training windows; model {config.model.base} "
        f"with {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    started = time.perf_counter()
    history = fit(model, examples, tokenizer, config, log=log)
    return FittedModel(model, tokenizer, featurizer, history, round(time.perf_counter() - started, 1), n_windows)


def predict_documents(predictor: Predictor, documents: Sequence[Document]) -> dict[str, PredictedDocument]:
    entities = predictor.predict([d.text for d in documents])
    return {doc.doc_id: PredictedDocument(doc.doc_id, doc.text, tuple(e.as_span() for e in found),
                                          tuple(e.score for e in found))
            for doc, found in zip(documents, entities)}


def train(config: Config, *, root: Path = Path("."), config_path: Path | None = None,
          models_dir: Path | None = None, runs_dir: Path | None = None, version: str | None = None,
          log=print) -> TrainingResult:
    """The whole training stage: read and split annotations, fine-tune, score dev, write artifacts."""
    root = Path(root)
    models_dir = Path(models_dir) if models_dir else root / "models"
    runs_dir = Path(runs_dir) if runs_dir else root / "training"
    version = version or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.name}"
    for taken in (models_dir / version, runs_dir / version):
        if taken.exists():  # checked again when writing; this only saves a wasted run
            raise FileExistsError(f"{taken} already exists; choose another version name")
    threads = set_threads(config.train.threads)
    annotation_files = resolve_annotation_files(config.data.annotations, root)
    documents = load_documents(annotation_files, config.labels)
    split = split_documents(documents, config.data)
    log(f"{len(documents)} documents from {len(annotation_files)} file(s): "
        f"{len(split.train)} train, {len(split.dev)} dev; {threads} threads")

    vocab_texts, vocab_files = vocabulary_texts(config, documents, root)
    fitted = fit_model(config, split.train, vocab_texts, log=log)
    model, tokenizer, history, train_seconds = fitted.model, fitted.tokenizer, fitted.history, fitted.seconds
    predictor = fitted.predictor(config, version)
    dev_metrics = (evaluate(split.dev, predict_documents(predictor, split.dev), config.labels)
                   if split.dev else None)
    peak_memory_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    card = {
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_name": config.name,
        "config_file": str(config_path) if config_path else None,
        "base_model": config.model.base,
        "labels": config.labels,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "data": {
            "annotation_files": [{"path": _relative(p, root), "sha256": sha256_file(p)} for p in annotation_files],
            "vocab_files": len(vocab_files) if is_scratch(config) else 0,
            "train_documents": [d.doc_id for d in split.train],
            "dev_documents": [d.doc_id for d in split.dev],
            "train_windows": fitted.windows,
            "train_characters": sum(len(d.text) for d in split.train),
        },
        "training": {
            "seconds": train_seconds,
            "peak_memory_mb": peak_memory_mb,
            "threads": threads,
            "final_loss": history[-1].loss if history else None,
        },
        "dev_metrics": dev_metrics.to_dict() if dev_metrics else None,
        "git_commit": git_commit(root),
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "platform": platform.platform()},
        "config": config.to_dict(),
    }
    settings = {"version": version, "labels": config.labels, "tags": config.tags,
                "max_length": config.window.max_length, "stride": config.window.stride,
                "features": fitted.featurizer.to_dict(), "crf": crf_parameters(model)}

    model_dir = models_dir / version
    with atomic_directory(model_dir) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        atomic_write_json(scratch / MODEL_SETTINGS_FILE, settings)
        atomic_write_text(scratch / "train_config.yaml", yaml.safe_dump(config.to_dict(), allow_unicode=True,
                                                                        sort_keys=False))
        atomic_write_json(scratch / MODEL_CARD_FILE, card)
        atomic_write_text(scratch / "README.md", model_card_markdown(card))

    run_dir = runs_dir / version
    with atomic_directory(run_dir) as scratch:
        atomic_write_text(scratch / "log.jsonl", "".join(json.dumps(r.__dict__) + "\n" for r in history))
        atomic_write_json(scratch / "summary.json", {k: card[k] for k in
                                                      ("version", "created", "base_model", "data", "training",
                                                       "dev_metrics", "git_commit")})
        atomic_write_text(scratch / "config.yaml", yaml.safe_dump(config.to_dict(), allow_unicode=True,
                                                                  sort_keys=False))
    log(f"wrote {model_dir} and {run_dir} ({train_seconds}s training, peak {peak_memory_mb} MB)")
    return TrainingResult(version, model_dir, run_dir, split, dev_metrics, train_seconds, peak_memory_mb, history)


def git_commit(root: Path) -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)
