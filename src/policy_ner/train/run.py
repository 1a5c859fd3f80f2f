"""Config + annotations -> fine-tuned token classifier in `models/<version>/` and a run record in
`training/<version>/`, both written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
import yaml

from ..config import Config, DataConfig
from ..features.channels import Featurizer
from ..files import atomic_directory, atomic_write_json, atomic_write_text, remove_stale_partials, sha256_file
from ..labelstudio.exports import (
    describe_identical_texts,
    identical_text_groups,
    read_exports,
    resolve_annotation_files,
)
from ..model.network import crf_parameters, is_scratch, load_base_tokenizer, new_model
from ..model.predictor import Predictor, predict_documents, set_threads
from ..model.registry import MODEL_CARD_FILE, MODEL_SETTINGS_FILE, file_checksums, reserved_version
from ..scoring import EvaluationResult, evaluate
from ..types import Document
from .augment import augment, source_doc_id
from .card import model_card_markdown
from .checkpoints import CHECKPOINT_SUFFIX, STATE_FILE, Checkpoints, fingerprint
from .dataset import count_windows, default_cache_dir, training_examples
from .loop import EpochRecord, fit, make_accelerator, seed_everything


@dataclass(frozen=True)
class DataSplit:
    train: list[Document]
    dev: list[Document]


def split_documents(documents: Sequence[Document], data: DataConfig) -> DataSplit:
    """Deterministic split by document: explicit `dev_documents`, else the `dev_fraction` of
    documents whose salted doc-id hash sorts first. Independent of file and task order. Documents
    with identical texts always land in one split (`identical_text_groups`): a dev copy of a training
    text would score the model on what it learnt."""
    representative = identical_text_groups(documents)
    if data.dev_documents:
        unknown = sorted(set(data.dev_documents) - {d.doc_id for d in documents})
        if unknown:
            raise ValueError(f"data.dev_documents names unknown doc ids: {', '.join(unknown)}")
        chosen = set(data.dev_documents)
    else:
        n_dev = math.ceil(len(documents) * data.dev_fraction) if data.dev_fraction else 0
        if len(documents) > 1:
            n_dev = min(n_dev, len(documents) - 1)

        def rank(doc: Document) -> tuple[str, str]:
            return hashlib.sha256(f"{data.split_seed}:{representative[doc.doc_id]}".encode()).hexdigest(), doc.doc_id

        chosen = {d.doc_id for d in sorted(documents, key=rank)[:n_dev]}
    dev_groups = {representative[doc_id] for doc_id in chosen}
    dev_ids = {d.doc_id for d in documents if representative[d.doc_id] in dev_groups}
    return DataSplit(
        train=[d for d in documents if d.doc_id not in dev_ids], dev=[d for d in documents if d.doc_id in dev_ids]
    )


def check_trainable(split: DataSplit, files: Sequence[Path]) -> None:
    """Training needs documents to learn from; an empty or all-dev split would train on nothing."""
    named = ", ".join(map(str, files))
    if not split.train and not split.dev:
        raise ValueError(f"no annotated documents in {named}: nothing to train on")
    if not split.train:
        raise ValueError(
            f"no training documents: all {len(split.dev)} annotated document(s) in {named} are in dev; "
            "annotate more documents, or set data.dev_fraction: 0 (no dev score) or data.dev_documents"
        )
    if not any(d.spans for d in split.train):
        raise ValueError(f"the {len(split.train)} training document(s) in {named} hold no spans: nothing to learn")


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


@dataclass
class FittedModel:
    """A model fine-tuned on some documents, with what it took."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    featurizer: Featurizer
    history: list[EpochRecord]
    seconds: float
    windows: int

    def predictor(self, config: Config, version: str = "") -> Predictor:
        return Predictor(
            self.model,
            self.tokenizer,
            config.tags,
            config.window.max_length,
            config.window.stride,
            features=self.featurizer,
            version=version,
        )


def vocabulary_texts(config: Config, documents: Sequence[Document], root: Path) -> tuple[list[str], list[Path]]:
    """The texts whose characters make a scratch vocabulary: the annotated documents and the
    `data.vocab_sources` files (also returned, for the model card)."""
    files = [p for pattern in config.data.vocab_sources for p in sorted(Path(root).glob(pattern))]
    return [d.text for d in documents] + [p.read_text(encoding="utf-8-sig") for p in files], files


def fit_model(
    config: Config,
    train_documents: Sequence[Document],
    vocab_texts: Sequence[str],
    log=print,
    cache_dir: str | Path | None = None,
    *,
    dev_documents: Sequence[Document] = (),
    accelerator=None,
    checkpoints: Checkpoints | None = None,
) -> FittedModel:
    """A new model (scratch or from `model.base`) fine-tuned on `train_documents`; its featurized
    training examples are cached in `cache_dir` (none: computed in memory). `dev_documents` are
    scored after every epoch when `train.select` is `best` or `train.patience` is set."""
    seed_everything(config.train.seed)
    tokenizer = load_base_tokenizer(config, vocab_texts)
    t = config.train
    documents = [*train_documents, *augment(train_documents, t.augment_copies, t.augment_probability, t.seed)]
    featurizer = Featurizer(
        tuple(config.model.features), tuple(config.labels), dense=tuple(config.model.dense_features)
    ).fitted(train_documents)
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        # one process writes the example cache, the others then read it
        examples = training_examples(
            documents, tokenizer, config.tags, featurizer, group=source_doc_id, cache_dir=cache_dir, log=log
        )
    n_windows = count_windows(examples, config.window.max_length, config.window.stride, config.window.pack)
    model = new_model(config, tokenizer, config.window.max_length, featurizer.sizes, featurizer.dense_sizes)
    log(
        f"{n_windows} training windows; model {config.model.base} "
        f"with {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
    )
    score = None
    if config.train.select == "best" or config.train.patience:
        if not dev_documents:
            raise ValueError(
                f"train.select: {config.train.select} and train.patience: {config.train.patience} score dev after "
                "every epoch, and this run has no dev documents (set data.dev_fraction or data.dev_documents)"
            )

        def score(trained) -> float:
            predictor = FittedModel(trained, tokenizer, featurizer, [], 0.0, 0).predictor(config)
            return evaluate(dev_documents, predict_documents(predictor, dev_documents), config.labels).micro.f1

    started = time.perf_counter()
    history = fit(
        model, examples, tokenizer, config, log=log, accelerator=accelerator, score=score, checkpoints=checkpoints
    )
    return FittedModel(model, tokenizer, featurizer, history, round(time.perf_counter() - started, 1), n_windows)


def train(
    config: Config,
    *,
    root: Path = Path("."),
    config_path: Path | None = None,
    models_dir: Path | None = None,
    runs_dir: Path | None = None,
    version: str | None = None,
    resume: bool = False,
    log=print,
) -> TrainingResult | None:
    """The whole training stage: read and split annotations, fine-tune, score dev, write artifacts.
    The version name (`version`, else `<timestamp>-<config name>`) is reserved first, so two runs
    started in the same second get two names instead of one losing its work at the end.

    Every epoch is checkpointed in `training/.<version>.checkpoint/`; with `resume`, the run of
    `version` (default: this config's most recent unfinished run) goes on from its last checkpoint.
    Started by `accelerate launch` or `torchrun`, each process trains its share of every step; the
    first one reserves, scores and writes, the others return None."""
    root = Path(root)
    models_dir = Path(models_dir) if models_dir else root / "models"
    runs_dir = Path(runs_dir) if runs_dir else root / "training"
    accelerator = make_accelerator(config.train)
    if not accelerator.is_main_process:
        _train(config, root, config_path, models_dir, runs_dir, _shared_version(accelerator, None), log, accelerator)
        return None
    if resume:
        version = version or unfinished_run(runs_dir, config.name)
    default = f"{time.strftime('%Y%m%d-%H%M%S')}-{config.name}"
    for folder in (models_dir, runs_dir):
        for removed in remove_stale_partials(folder):
            log(f"removed {removed.path}: left unfinished by a killed run (process {removed.owner})")
    with reserved_version([models_dir, runs_dir], version, default) as reserved:
        _shared_version(accelerator, reserved)
        if not resume and checkpoint_folder(runs_dir, reserved).exists():
            raise FileExistsError(
                f"{checkpoint_folder(runs_dir, reserved)}: an unfinished run of {reserved} is there; "
                f"pass --resume to go on with it, or remove it"
            )
        return _train(config, root, config_path, models_dir, runs_dir, reserved, log, accelerator)


def checkpoint_folder(runs_dir: Path, version: str) -> Path:
    return runs_dir / f".{version}{CHECKPOINT_SUFFIX}"


def unfinished_run(runs_dir: Path, config_name: str) -> str:
    """The version of this config's most recently checkpointed run that did not finish."""
    runs = []
    for folder in Path(runs_dir).glob(f".*{CHECKPOINT_SUFFIX}"):
        states = sorted(folder.glob(f"epoch-*/{STATE_FILE}"))
        state = json.loads(states[-1].read_text(encoding="utf-8")) if states else {}
        if state.get("identity", {}).get("config", {}).get("name") == config_name:
            runs.append((states[-1].stat().st_mtime, folder.name[1 : -len(CHECKPOINT_SUFFIX)]))
    if not runs:
        raise FileNotFoundError(f"{runs_dir}: no unfinished run of config {config_name!r} to resume")
    return max(runs)[1]


def _shared_version(accelerator, version: str | None) -> str:
    """The version the first process reserved, known to every process of a multi-process run."""
    if accelerator.num_processes == 1:
        return version or ""
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([version], from_process=0)[0]


def _train(
    config: Config,
    root: Path,
    config_path: Path | None,
    models_dir: Path,
    runs_dir: Path,
    version: str,
    log,
    accelerator,
) -> TrainingResult | None:
    main = accelerator.is_main_process
    if not main:
        log = _silent
    threads = set_threads(config.train.threads)
    annotation_files = resolve_annotation_files(config.data.annotations, root)
    reading = read_exports(annotation_files, config.labels, config.data.edge_punctuation)
    reading.raise_for_issues()
    documents = reading.documents
    split = split_documents(documents, config.data)
    check_trainable(split, annotation_files)
    log(
        f"{len(documents)} documents from {len(annotation_files)} file(s): "
        f"{len(split.train)} train, {len(split.dev)} dev; {threads} threads"
    )
    if reading.identical_texts:
        log(f"warning: {describe_identical_texts(reading.identical_texts)}")

    vocab_texts, vocab_files = vocabulary_texts(config, documents, root)
    identity = {
        "config": config.to_dict(),
        "documents": fingerprint([[d.doc_id, d.text, [[s.start, s.end, s.label] for s in d.spans]] for d in documents]),
        "processes": accelerator.num_processes,
    }
    checkpoints = Checkpoints(checkpoint_folder(runs_dir, version), identity)
    fitted = fit_model(
        config,
        split.train,
        vocab_texts,
        log=log,
        cache_dir=default_cache_dir(),
        dev_documents=split.dev,
        accelerator=accelerator,
        checkpoints=checkpoints,
    )
    if not main:
        return None
    model, tokenizer, history, train_seconds = fitted.model, fitted.tokenizer, fitted.history, fitted.seconds
    predictor = fitted.predictor(config, version)
    dev_metrics = evaluate(split.dev, predict_documents(predictor, split.dev), config.labels) if split.dev else None
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
            "epochs_run": len(history),
            "kept_epoch": _kept_epoch(config, history),
            "device": str(accelerator.device),
            "precision": config.train.precision,
            "processes": accelerator.num_processes,
        },
        "dev_metrics": dev_metrics.to_dict() if dev_metrics else None,
        "git_commit": git_commit(root),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "platform": platform.platform(),
        },
        "config": config.to_dict(),
    }
    settings = {
        "version": version,
        "labels": config.labels,
        "edge_punctuation": config.data.edge_punctuation,
        "tags": config.tags,
        "max_length": config.window.max_length,
        "stride": config.window.stride,
        "features": fitted.featurizer.to_dict(),
        "crf": crf_parameters(model),
    }

    model_dir = models_dir / version
    with atomic_directory(model_dir) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        atomic_write_json(scratch / MODEL_SETTINGS_FILE, settings)
        atomic_write_text(
            scratch / "train_config.yaml", yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False)
        )
        card["files"] = file_checksums(scratch, sorted(p.name for p in scratch.iterdir() if p.is_file()))
        atomic_write_json(scratch / MODEL_CARD_FILE, card)
        atomic_write_text(scratch / "README.md", model_card_markdown(card))

    run_dir = runs_dir / version
    with atomic_directory(run_dir) as scratch:
        atomic_write_text(scratch / "log.jsonl", "".join(json.dumps(r.__dict__) + "\n" for r in history))
        atomic_write_json(
            scratch / "summary.json",
            {k: card[k] for k in ("version", "created", "base_model", "data", "training", "dev_metrics", "git_commit")},
        )
        atomic_write_text(
            scratch / "config.yaml", yaml.safe_dump(config.to_dict(), allow_unicode=True, sort_keys=False)
        )
    checkpoints.remove()
    log(f"wrote {model_dir} and {run_dir} ({train_seconds}s training, peak {peak_memory_mb} MB)")
    return TrainingResult(version, model_dir, run_dir, split, dev_metrics, train_seconds, peak_memory_mb, history)


def _kept_epoch(config: Config, history: Sequence[EpochRecord]) -> int | None:
    """The epoch whose weights were saved (`train.select: best`), or the last one."""
    scored = [r for r in history if r.dev_f1 is not None]
    if config.train.select == "best" and scored:
        return max(scored, key=lambda r: (r.dev_f1, -r.epoch)).epoch
    return history[-1].epoch if history else None


def _silent(*_args, **_kwargs) -> None:
    """The log of every process but the first of a multi-process run (one copy of each line is enough)."""


def git_commit(root: Path) -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)
