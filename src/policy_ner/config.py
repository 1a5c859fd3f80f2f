"""One validated YAML file holds every setting of a training run.

The file is read into frozen dataclasses; unknown keys, missing required keys and values of
the wrong type are errors that name the file and the key, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml


SCRATCH = "scratch"
"""`model.base` value that builds a small BERT from a config instead of loading weights."""

CHANNELS = ("jieba", "lac", "gazetteer", "money")
"""The per-character feature channels a model may use (`features.channels`)."""
_LABEL_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*$")


class ConfigError(ValueError):
    """A configuration file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class DataConfig:
    annotations: list[str] = field(default_factory=lambda: ["annotations/*.json"])
    """Label Studio export files or glob patterns, relative to the project root."""
    vocab_sources: list[str] = field(default_factory=lambda: ["data/raw/*.txt"])
    """Raw texts whose characters join the scratch vocabulary (besides the annotated texts)."""
    dev_fraction: float = 0.2
    dev_documents: list[str] = field(default_factory=list)
    """Explicit dev doc ids; when given they replace the hashed split."""
    split_seed: int = 13
    manifest: str = "data/manifest.csv"
    """The manifest whose `group` and `genre` columns `policy-ner cv` splits by (relative to the root)."""


@dataclass(frozen=True)
class ModelConfig:
    base: str = SCRATCH
    """`scratch`, a Hugging Face hub id, or a local directory in Hugging Face format."""
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    dropout: float = 0.1
    min_char_count: int = 1
    """Characters seen fewer times than this in the vocabulary sources map to [UNK]."""
    conv_layers: int = 0
    """Residual convolutions between the encoder and the classifier (local n-gram detectors)."""
    conv_kernel: int = 3
    crf: bool = False
    """A linear-chain CRF over the tags (IOB2-constrained) instead of a softmax per character."""
    features: list[str] = field(default_factory=list)
    """Per-character feature channels fed to the encoder in place of token types: any of `jieba`
    (word boundaries), `lac` (LAC part-of-speech and entity tags), `gazetteer` (training mentions)
    and `money` (amounts of money, with or without a support word before them); see features.py."""


@dataclass(frozen=True)
class WindowConfig:
    max_length: int = 256
    """Tokens per window including [CLS] and [SEP]."""
    stride: int = 64
    """Tokens shared by consecutive windows (as in Hugging Face tokenizers)."""


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = 1e-3
    epochs: int = 30
    batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    window_jitter: bool = False
    """Shift the inner training windows by a random offset each epoch (same text, new positions)."""
    threads: int = 0
    """Torch intra-op threads; 0 means one per available core."""
    augment_copies: int = 0
    """Mention-replaced copies of each training document added to the training set (augment.py)."""
    augment_probability: float = 0.5
    """Chance that each mention in a copy is replaced by another training mention of its label."""
    entity_weight: float = 1.0
    """Loss weight of characters inside entities relative to `O` (class weighting; softmax head only)."""
    average_last: int = 1
    """Average the weights at the end of the last N epochs (1: keep the final weights)."""


@dataclass(frozen=True)
class Config:
    name: str
    labels: list[str]
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def tags(self) -> list[str]:
        """IOB2 tag inventory: `O`, then `B-X`, `I-X` for each label in config order."""
        return ["O"] + [f"{prefix}-{label}" for label in self.labels for prefix in ("B", "I")]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_channels(channels: Iterable[str]) -> list[str]:
    """Problems with a list of channel names (unknown or repeated names)."""
    channels = list(channels)
    problems = [f"unknown feature {c!r}; choose from {', '.join(CHANNELS)}" for c in channels if c not in CHANNELS]
    if len(set(channels)) != len(channels):
        problems.append(f"features are repeated: {channels}")
    return problems


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: Any, source: str = "<dict>") -> Config:
    config = _build(Config, raw, source, "")
    _check(config, source)
    return config


def _build(cls: type, raw: Any, source: str, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where or 'top level'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}; "
                          f"allowed: {', '.join(sorted(fields))}")
    values = {}
    for name, f in fields.items():
        key = where + name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key {key}")
            continue
        values[name] = _coerce(hints[name], raw[name], source, key)
    return cls(**values)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{source}: {key}: union types are not supported in config")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads `5e-4` as a string
            return float(value)
        except ValueError:
            pass
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: {key} must be {hint.__name__}, got {value!r}")


def _check(config: Config, source: str) -> None:
    problems = []
    if not config.labels:
        problems.append("labels must name at least one entity type")
    for label in config.labels:
        if not _LABEL_PATTERN.match(label):
            problems.append(f"label {label!r} must be upper-case letters, digits and underscores")
    if len(set(config.labels)) != len(config.labels):
        problems.append(f"labels contain duplicates: {config.labels}")
    if not 0.0 <= config.data.dev_fraction < 1.0:
        problems.append("data.dev_fraction must be in [0, 1)")
    window = config.window
    if window.max_length < 8:
        problems.append("window.max_length must be at least 8")
    if not 0 <= window.stride <= (window.max_length - 2) // 2:
        problems.append("window.stride must be between 0 and half the window's content length "
                        f"({(window.max_length - 2) // 2} for max_length {window.max_length})")
    problems += [f"model.features: {problem}" for problem in check_channels(config.model.features)]
    if config.model.conv_layers < 0 or config.model.conv_kernel < 1 or config.model.conv_kernel % 2 == 0:
        problems.append("model.conv_layers must be >= 0 and model.conv_kernel a positive odd number")
    if config.model.hidden_size % config.model.num_heads:
        problems.append("model.hidden_size must be divisible by model.num_heads")
    for key in ("epochs", "batch_size"):
        if getattr(config.train, key) < 1:
            problems.append(f"train.{key} must be at least 1")
    if config.train.learning_rate <= 0:
        problems.append("train.learning_rate must be positive")
    if config.train.entity_weight <= 0:
        problems.append("train.entity_weight must be positive")
    if config.train.entity_weight != 1.0 and config.model.crf:
        problems.append("train.entity_weight weights the softmax loss; a CRF head (model.crf) has none")
    if not 1 <= config.train.average_last <= config.train.epochs:
        problems.append("train.average_last must be between 1 and train.epochs")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
