"""The cores this process may use, and ONNX Runtime sessions on them (onnxruntime loads on first use)."""

from __future__ import annotations

import os
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and `taskset` restrict)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_session(model: str | Path | bytes, threads: int = 0):
    """An ONNX Runtime session on the CPU for the model file at `model` (or the serialized model itself)
    with `threads` intra-op threads (0: one per available core).
    Its threads do not spin-wait after a run: prediction alternates ONNX runs with torch and numpy
    work, which spinning threads would starve of the same cores."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = available_cores() if threads <= 0 else threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
