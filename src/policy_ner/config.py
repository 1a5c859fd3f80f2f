"""One validated YAML file holds every setting of a training run.

The file is read into frozen pydantic models with strict types: unknown keys, missing required keys,
values of the wrong type and inconsistent settings are errors that name the file and the key, so a
typo never silently falls back to a default. `json_schema()` describes the same models for editors
(`policy-ner config schema`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

from .tags import tag_inventory

SCRATCH = "scratch"
"""`model.base` value that builds a small BERT from a config instead of loading weights."""

CHANNELS = ("jieba", "lac", "gazetteer", "money")
"""The per-character feature channels a model may use (`features.channels`)."""
DENSE_FEATURES = ("lac_states", "lac_emissions")
"""The dense per-character inputs a model may use (`features.lexicon.LAC_DENSE`)."""
INIT_EMBEDDINGS = ("random", "lac")
"""How a scratch model's character embeddings start (`model.init_embeddings`)."""
LAC_EMBEDDING_WIDTH = 128
"""Width of LAC's character embedding table, which `init_embeddings: lac` copies."""
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
SELECTIONS = ("last", "best")
_LABEL_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_EDGE_PUNCTUATION = "，。、；：“”《》（）,.;:()\"'!?！？"
"""The policy guidelines' rule: no span starts or ends with one of these characters."""


class ConfigError(ValueError):
    """A configuration file is missing, malformed or inconsistent."""


def _yaml_float(value: Any) -> Any:
    """YAML 1.1 reads `5e-4` (no dot) as a string: such a string is the number it spells."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


YamlFloat = Annotated[float, BeforeValidator(_yaml_float)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)


class DataConfig(_Section):
    annotations: list[str] = ["annotations/*.json"]
    """Label Studio export files or glob patterns, relative to the project root."""
    vocab_sources: list[str] = ["data/raw/*.txt"]
    """Raw texts whose characters join the scratch vocabulary (besides the annotated texts)."""
    dev_fraction: YamlFloat = 0.2
    dev_documents: list[str] = []
    """Explicit dev doc ids; when given they replace the hashed split."""
    split_seed: int = 13
    edge_punctuation: str = DEFAULT_EDGE_PUNCTUATION
    """Characters a gold span may not start or end with; `""` turns the rule off (other data sets'
    conventions, e.g. `…（集团）` or `《…》` inside names)."""
    manifest: str = "data/manifest.csv"
    """The manifest whose `group` and `genre` columns `policy-ner cv` splits by (relative to the root)."""


class ModelConfig(_Section):
    base: str = SCRATCH
    """`scratch`, a Hugging Face hub id, or a local directory in Hugging Face format."""
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    dropout: YamlFloat = 0.1
    min_char_count: int = 1
    """Characters seen fewer times than this in the vocabulary sources map to [UNK]."""
    conv_layers: int = 0
    """Residual convolutions between the encoder and the classifier (local n-gram detectors)."""
    conv_kernel: int = 3
    crf: bool = False
    """A linear-chain CRF over the tags (IOB2-constrained) instead of a softmax per character."""
    features: list[str] = []
    """Per-character feature channels fed to the encoder in place of token types: any of `jieba`
    (word boundaries), `lac` (LAC part-of-speech and entity tags), `gazetteer` (training mentions)
    and `money` (amounts of money, with or without a support word before them); see features.py."""
    dense_features: list[str] = []
    """Dense per-character inputs from the same run of Baidu LAC's network as the `lac` channel,
    projected into the embeddings: `lac_states` (its second BiGRU layer, 256 per character) and/or
    `lac_emissions` (its 59 tag scores)."""
    init_embeddings: str = "random"
    """`random`, or `lac`: a scratch model's character embeddings start from LAC's pretrained table
    (characters LAC knows; needs model.hidden_size 128, LAC's width)."""


class WindowConfig(_Section):
    max_length: int = 256
    """Tokens per window including [CLS] and [SEP]."""
    stride: int = 64
    """Tokens shared by consecutive windows (as in Hugging Face tokenizers)."""
    pack: bool = True
    """Training packs documents shorter than a window into shared windows, [SEP] between them, so a data
    set of one-sentence documents trains in as few windows (and batches) as long documents of the same
    size. Prediction still reads every document alone."""


class TrainConfig(_Section):
    learning_rate: YamlFloat = 1e-3
    epochs: int = 30
    batch_size: int = 16
    warmup_ratio: YamlFloat = 0.1
    weight_decay: YamlFloat = 0.01
    max_grad_norm: YamlFloat = 1.0
    seed: int = 42
    window_jitter: bool = False
    """Shift the inner training windows by a random offset each epoch (same text, new positions)."""
    threads: int = 0
    """Torch intra-op threads; 0 means one per available core."""
    augment_copies: int = 0
    """Mention-replaced copies of each training document added to the training set (augment.py)."""
    augment_probability: YamlFloat = 0.5
    """Chance that each mention in a copy is replaced by another training mention of its label."""
    entity_weight: YamlFloat = 1.0
    """Loss weight of characters inside entities relative to `O` (class weighting; softmax head only)."""
    average_last: int = 1
    """Average the weights at the end of the last N epochs (1: keep the final weights)."""
    device: str = "auto"
    """`auto` (CUDA, else Apple MPS, else the CPU), `cpu`, `cuda` or `mps`."""
    precision: str = "fp32"
    """`fp32`, or mixed precision: `bf16` (CPU or GPU) or `fp16` (GPU, with loss scaling)."""
    gradient_accumulation: int = 1
    """Batches whose gradients are summed before each optimizer step (an effective batch of
    batch_size x gradient_accumulation x processes)."""
    select: str = "last"
    """`last` keeps the final epoch's weights; `best` scores dev (strict micro F1) after every epoch
    and keeps the best epoch's weights (needs dev documents)."""
    patience: int = 0
    """Stop when dev F1 has not improved for this many epochs (0: never; needs dev documents)."""


class Config(_Section):
    name: str
    labels: list[str]
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    window: WindowConfig = WindowConfig()
    train: TrainConfig = TrainConfig()

    @property
    def tags(self) -> list[str]:
        """IOB2 tag inventory: `O`, then `B-X`, `I-X` for each label in config order."""
        return tag_inventory(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _problems(config: Config) -> list[str]:
    problems = []
    if not config.labels:
        problems.append("labels must name at least one entity type")
    problems += [problem for label in config.labels for problem in label_name_problems(label)]
    if len(set(config.labels)) != len(config.labels):
        problems.append(f"labels contain duplicates: {config.labels}")
    if not 0.0 <= config.data.dev_fraction < 1.0:
        problems.append("data.dev_fraction must be in [0, 1)")
    window = config.window
    if window.max_length < 8:
        problems.append("window.max_length must be at least 8")
    if not 0 <= window.stride <= (window.max_length - 2) // 2:
        problems.append(
            "window.stride must be between 0 and half the window's content length "
            f"({(window.max_length - 2) // 2} for max_length {window.max_length})"
        )
    problems += [f"model.features: {problem}" for problem in check_channels(config.model.features)]
    problems += [f"model.dense_features: {problem}" for problem in check_dense_features(config.model.dense_features)]
    if config.model.init_embeddings not in INIT_EMBEDDINGS:
        problems.append(
            f"model.init_embeddings: unknown value {config.model.init_embeddings!r}; choose from "
            + ", ".join(INIT_EMBEDDINGS)
        )
    elif config.model.init_embeddings == "lac":
        if config.model.base != SCRATCH:
            problems.append("model.init_embeddings: lac initialises a scratch model (model.base: scratch)")
        if config.model.hidden_size != LAC_EMBEDDING_WIDTH:
            problems.append(
                f"model.init_embeddings: lac copies LAC's {LAC_EMBEDDING_WIDTH}-wide embeddings, "
                f"so model.hidden_size must be {LAC_EMBEDDING_WIDTH} (got {config.model.hidden_size})"
            )
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
    problems += _choice_problems("train.device", config.train.device, DEVICES)
    problems += _choice_problems("train.precision", config.train.precision, PRECISIONS)
    problems += _choice_problems("train.select", config.train.select, SELECTIONS)
    if config.train.gradient_accumulation < 1:
        problems.append("train.gradient_accumulation must be at least 1")
    if config.train.patience < 0:
        problems.append("train.patience must be >= 0 (0: no early stopping)")
    if config.train.average_last > 1 and (config.train.select == "best" or config.train.patience):
        problems.append(
            "train.average_last averages the last epochs; it cannot be combined with select: best or patience"
        )
    return problems


def _choice_problems(key: str, value: str, choices: Iterable[str]) -> list[str]:
    return [] if value in choices else [f"{key}: unknown value {value!r}; choose from {', '.join(choices)}"]


def label_name_problems(label: str) -> list[str]:
    """Any name Label Studio allows is a label here (`company`, `PER.NOM`, `机构`), with three exceptions:
    an empty name, surrounding spaces or control characters (which a labelling screen cannot show
    apart), and a leading or trailing `-`, which seqeval strips when it reads `B-<label>` tags."""
    if not label.strip():
        return ["a label name must not be empty"]
    problems = []
    if label != label.strip():
        problems.append(f"label {label!r} has leading or trailing spaces")
    if _LABEL_FORBIDDEN.search(label):
        problems.append(f"label {label!r} holds a control character")
    if label.startswith("-") or label.endswith("-"):
        problems.append(f"label {label!r} must not start or end with '-' (the IOB2 tags are B-<label>, I-<label>)")
    return problems


def check_channels(channels: Iterable[str]) -> list[str]:
    """Problems with a list of channel names (unknown or repeated names)."""
    channels = list(channels)
    problems = [f"unknown feature {c!r}; choose from {', '.join(CHANNELS)}" for c in channels if c not in CHANNELS]
    if len(set(channels)) != len(channels):
        problems.append(f"features are repeated: {channels}")
    return problems


def check_dense_features(names: Iterable[str]) -> list[str]:
    """Problems with a list of dense feature names (unknown or repeated names)."""
    names = list(names)
    problems = [
        f"unknown dense feature {n!r}; choose from {', '.join(DENSE_FEATURES)}"
        for n in names
        if n not in DENSE_FEATURES
    ]
    if len(set(names)) != len(names):
        problems.append(f"dense features are repeated: {names}")
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
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_describe(error) for error in exc.errors())) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a training config (descriptions from the field docstrings)."""
    return Config.model_json_schema()


_EXPECTED = {
    "int_type": "int",
    "int_parsing": "int",
    "float_type": "float",
    "float_parsing": "float",
    "bool_type": "bool",
    "string_type": "str",
    "list_type": "a list",
    "model_type": "a mapping",
    "dict_type": "a mapping",
}


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as `key: message`, in the words the config's users read."""
    key = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in error["loc"]).replace(".[", "[")
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, _, name = key.rpartition(".")
        return f"unknown key(s) {key}; allowed: {', '.join(sorted(_section_at(parent).model_fields))}"
    if kind == "missing":
        return f"missing required key {key}"
    if kind in _EXPECTED:
        return f"{key} must be {_EXPECTED[kind]}, got {error['input']!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}" if key else message


def _section_at(key: str) -> type[BaseModel]:
    section: type[BaseModel] = Config
    for name in filter(None, key.split(".")):
        section = section.model_fields[name].annotation  # type: ignore[assignment]
    return section
