"""The model registry: every version in `models/`, described from its model card alone (no weights
are loaded)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import markdown
from ..files import PartialFolder, owner_is_gone, owner_tag, sha256_file

MODEL_CARD_FILE = "model_card.json"
MODEL_SETTINGS_FILE = "policy_ner.json"
"""What inference needs besides weights and tokenizer: tags, window settings, feature switches."""


def read_json_file(model_dir: str | Path, name: str) -> dict:
    """One of a model directory's JSON files; a missing one is an error naming the folder."""
    path = Path(model_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: not a policy-ner model directory (no {name})")
    return json.loads(path.read_text(encoding="utf-8"))


VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
"""A version names one folder (`models/<version>/`, `eval/<version>/`): no separators, no `..`."""


def check_version(version: str, where: str = "version") -> str:
    """`version` if it is a safe folder name, else a ValueError naming `where`."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise ValueError(
            f"{where}: {version!r} is not a valid version name (letters, digits and . _ + -, "
            "starting with a letter or digit; no path separators)"
        )
    return version


@contextlib.contextmanager
def reserved_version(folders: Sequence[Path], version: str | None, default: str) -> Iterator[str]:
    """A version name no other run can take while the block runs: `version` (an error when a folder of
    that name exists in `folders`), else `default`, or `default-2`, `default-3` ... when it is taken.
    The name is held by a `.<version>.reserved` file, made exclusively, in the first folder."""
    holder = Path(folders[0])
    holder.mkdir(parents=True, exist_ok=True)
    candidates = [version] if version else [default, *(f"{default}-{n}" for n in range(2, 1000))]
    for name in candidates:
        check_version(name, "--version" if version else "the default version")
        if any((Path(folder) / name).exists() for folder in folders):
            if version:
                taken = next(Path(f) / name for f in folders if (Path(f) / name).exists())
                raise FileExistsError(f"{taken} already exists; choose another version name")
            continue
        marker = holder / f".{name}.reserved"
        if not _reserve(marker):
            if version:
                raise FileExistsError(f"version {name} is being written by another run ({marker})")
            continue
        try:
            yield name
        finally:
            marker.unlink(missing_ok=True)
        return
    raise FileExistsError(f"no free version name after {default} in {holder}")


def _reserve(marker: Path) -> bool:
    """Create `marker` exclusively, holding this process's `owner_tag()`; a marker whose writer was
    killed (its process is gone) is taken over. False when a live run holds it."""
    for _ in range(2):
        try:
            handle = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = marker.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue  # released meanwhile
            if not owner_is_gone(owner):
                return False
            marker.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as written:
            written.write(owner_tag())
        return True
    return False


def describe_partial(folder: PartialFolder) -> str:
    if folder.stale:
        return f"{folder.path} was left by a killed run (process {folder.owner}); the next train removes it"
    if folder.owner is None:
        return f"{folder.path} is an unfinished folder of unknown origin; remove it once no run is writing it"
    return f"{folder.path} is being written by a running process ({folder.owner})"


def read_model_card(model_dir: str | Path) -> dict:
    return read_json_file(model_dir, MODEL_CARD_FILE)


def read_model_settings(model_dir: str | Path) -> dict:
    return read_json_file(model_dir, MODEL_SETTINGS_FILE)


class ModelFilesError(ValueError):
    """A model folder's files are missing, truncated, corrupted or unreadable."""


def file_checksums(folder: Path, names: Sequence[str]) -> dict[str, dict]:
    """`{name: {"bytes", "sha256"}}` of files in `folder`, as the model card records them."""
    return {name: {"bytes": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)} for name in names}


def verify_model_files(model_dir: str | Path) -> None:
    """Every file the model card lists (`files`: weights, tokenizer, settings) is there with its size
    and sha256; a model without such a list (trained before it existed) is not checked."""
    model_dir = Path(model_dir)
    if not (model_dir / MODEL_CARD_FILE).is_file():
        return
    for name, expected in read_model_card(model_dir).get("files", {}).items():
        path = model_dir / name
        advice = "copy the model folder again or retrain it"
        if not path.is_file():
            raise ModelFilesError(f"{path}: missing, but the model card lists it; {advice}")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise ModelFilesError(
                f"{path}: {size} bytes where the model card records {expected['bytes']} "
                f"(truncated or replaced); {advice}"
            )
        digest = sha256_file(path)
        if digest != expected["sha256"]:
            raise ModelFilesError(
                f"{path}: sha256 {digest[:12]}… differs from the model card's {expected['sha256'][:12]}… "
                f"(corrupted or replaced); {advice}"
            )


@dataclass(frozen=True)
class ModelEntry:
    version: str
    path: str
    created: str | None = None
    base_model: str | None = None
    data_files: tuple[str, ...] = ()
    """`path (sha256 prefix)` of each training annotation file."""
    train_documents: int = 0
    dev_documents: int = 0
    training_seconds: float | None = None
    dev_micro_precision: float | None = None
    dev_micro_recall: float | None = None
    dev_micro_f1: float | None = None
    dev_macro_f1: float | None = None
    problem: str = ""
    """Why the card could not be read (the folder is still listed)."""

    def to_dict(self) -> dict:
        return asdict(self)


def entry_from_card(card: dict, path: str) -> ModelEntry:
    data, training, dev = card.get("data", {}), card.get("training", {}), card.get("dev_metrics") or {}
    micro, macro = dev.get("micro", {}), dev.get("macro", {})
    return ModelEntry(
        version=card.get("version", Path(path).name),
        path=path,
        created=card.get("created"),
        base_model=card.get("base_model"),
        data_files=tuple(f"{f['path']} ({f['sha256'][:12]})" for f in data.get("annotation_files", [])),
        train_documents=len(data.get("train_documents", [])),
        dev_documents=len(data.get("dev_documents", [])),
        training_seconds=training.get("seconds"),
        dev_micro_precision=micro.get("precision"),
        dev_micro_recall=micro.get("recall"),
        dev_micro_f1=micro.get("f1"),
        dev_macro_f1=macro.get("f1"),
    )


def list_models(models_dir: str | Path = "models") -> list[ModelEntry]:
    """One entry per folder in `models_dir` (hidden and partial folders skipped), oldest first.
    A folder without a readable card is listed with `problem` set, never skipped silently."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise FileNotFoundError(f"{models_dir}: no such models folder")
    entries = []
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        card_path = folder / MODEL_CARD_FILE
        if not card_path.is_file():
            entries.append(ModelEntry(folder.name, str(folder), problem=f"no {MODEL_CARD_FILE}"))
            continue
        try:
            entries.append(entry_from_card(json.loads(card_path.read_text(encoding="utf-8")), str(folder)))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            entries.append(ModelEntry(folder.name, str(folder), problem=f"{card_path}: unreadable ({exc})"))
    return sorted(entries, key=lambda e: (e.created or "", e.version))


def models_table(entries: list[ModelEntry]) -> str:
    """A Markdown table of the registry, one row per version."""

    def num(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    header = [
        "version",
        "created",
        "base model",
        "training data",
        "train/dev docs",
        "training s",
        "dev P",
        "dev R",
        "dev micro F1",
        "dev macro F1",
    ]
    rows = [
        [e.version, e.problem, *[""] * 8]
        if e.problem
        else [
            e.version,
            e.created or "-",
            e.base_model,
            "; ".join(e.data_files),
            f"{e.train_documents}/{e.dev_documents}",
            num(e.training_seconds, 1),
            num(e.dev_micro_precision),
            num(e.dev_micro_recall),
            num(e.dev_micro_f1),
            num(e.dev_macro_f1),
        ]
        for e in entries
    ]
    return markdown.table(header, rows, "llllrrrrrr")
