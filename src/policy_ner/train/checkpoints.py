"""Checkpoints of a training run, one per finished epoch, so `train --resume` continues where a killed
run stopped and ends with the weights an uninterrupted run would have.

A checkpoint is a folder `epoch-<N>/` holding `state.json` (the epoch, the history, the random
generators' states, the run's fingerprint) and `tensors.pt` (model, optimizer and schedule states, the
best epoch's weights). Each is written atomically and the previous one removed after, so a kill at any
moment leaves at least one whole checkpoint. `tensors.pt` is read with `weights_only=True`: tensors and
plain containers only, never arbitrary pickled objects.

Written by hand because the state to restore is the loop's own (window shuffling and jitter generators,
the best-epoch copy, the weight average); accelerate's `save_state` would pickle those objects.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_directory, atomic_write_json

STATE_FILE = "state.json"
TENSORS_FILE = "tensors.pt"
CHECKPOINT_SUFFIX = ".checkpoint"


class CheckpointMismatch(ValueError):
    """`--resume` with another config or other training documents than the checkpointed run's."""


@dataclass(frozen=True)
class SavedEpoch:
    folder: Path
    state: dict[str, Any]
    tensors: dict[str, Any]

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])


def fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class Checkpoints:
    """The checkpoints of one run in `folder`; `identity` (config, documents) must match to resume."""

    def __init__(self, folder: str | Path, identity: dict[str, Any]):
        self.folder = Path(folder)
        self.identity = identity

    def latest(self) -> SavedEpoch | None:
        """The last whole checkpoint, or None when there is none. A checkpoint of another config or
        other documents is an error naming what differs."""
        numbered = [(int(p.name[len("epoch-") :]), p) for p in self.folder.glob("epoch-*") if p.name[6:].isdigit()]
        for _, folder in sorted(numbered, reverse=True):
            if not ((folder / STATE_FILE).is_file() and (folder / TENSORS_FILE).is_file()):
                continue
            state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            differ = sorted(k for k in self.identity if state.get("identity", {}).get(k) != self.identity[k])
            if differ:
                raise CheckpointMismatch(
                    f"{folder}: the checkpoint was made with another {' and '.join(differ)} than this run's; "
                    "resume with the same config and annotations, or train without --resume"
                )
            tensors = torch.load(folder / TENSORS_FILE, map_location="cpu", weights_only=True)
            return SavedEpoch(folder, state, tensors)
        return None

    def save(self, epoch: int, state: dict[str, Any], tensors: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"epoch-{epoch}"
        if final.exists():  # a resumed run redoing an epoch a kill interrupted after its save
            shutil.rmtree(final)
        with atomic_directory(final) as scratch:
            torch.save(tensors, scratch / TENSORS_FILE)
            atomic_write_json(scratch / STATE_FILE, {**state, "epoch": epoch, "identity": self.identity})
        for older in self.folder.glob("epoch-*"):
            if older != final and older.is_dir():
                shutil.rmtree(older)
        return final

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
