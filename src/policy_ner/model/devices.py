"""Which torch device a model runs on: `auto` picks the best one present, a named one must be there."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return [*devices, "cpu"]


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA, else MPS, else the CPU), or the device named, which must be present."""
    present = available_devices()
    if name == "auto":
        return torch.device(present[0])
    kind = name.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; choose from auto, cpu, cuda, mps")
    if kind not in present:
        raise ValueError(f"device {name!r} is not available here (torch sees: {', '.join(present)}); use auto or cpu")
    return torch.device(name)
