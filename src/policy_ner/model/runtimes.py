"""What runs the network: torch, or ONNX Runtime on the graphs `export.export_onnx` writes. Each gives the
emission logits (windows, positions, tags) of a batch of framed, padded windows (`encoding.pad_windows`)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..cpu import cpu_session

RUNTIMES = ("torch", "onnx", "onnx-int8")
"""What `Predictor.from_pretrained` can run a model directory on."""
ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
DENSE_INPUT = "dense_features"
"""The fourth input of a model with dense features (float32, batch x sequence x width)."""


def input_names(dense_size: int) -> tuple[str, ...]:
    """The network's inputs, in order, for a model whose dense features are `dense_size` wide (0: none)."""
    return (*INPUT_NAMES, DENSE_INPUT) if dense_size else INPUT_NAMES


class Runtime(Protocol):
    """Runs the network: emission logits (windows, positions, tags) for a batch of framed, padded windows;
    `dense_features` only for a model that takes them."""

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray,
        dense_features: np.ndarray | None = None,
    ) -> np.ndarray: ...


def network_inputs(
    input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray, dense_features: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The network's inputs by name, as both runtimes feed them: `dense_features` only when given, since
    only a model with dense features takes that input."""
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    if dense_features is not None:
        inputs[DENSE_INPUT] = dense_features
    return inputs


class TorchRuntime:
    """A torch token classifier in inference mode (torch is imported by whoever built `model`)."""

    def __init__(self, model):
        import torch

        self.model = model.eval()
        self.torch = torch

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray,
        dense_features: np.ndarray | None = None,
    ) -> np.ndarray:
        torch = self.torch
        inputs = network_inputs(input_ids, attention_mask, token_type_ids, dense_features)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            output = self.model(**{name: torch.from_numpy(array).to(device) for name, array in inputs.items()})
        return output.logits.float().cpu().numpy()


class OnnxRuntime:
    """An exported logits graph (`export.export_onnx`) run by ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = Path(path)
        self.session = cpu_session(path, threads)

    def logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray,
        dense_features: np.ndarray | None = None,
    ) -> np.ndarray:
        feed = network_inputs(input_ids, attention_mask, token_type_ids, dense_features)
        return self.session.run(["logits"], feed)[0]


def onnx_folder(model_dir: str | Path, onnx_dir: str | Path | None = None) -> Path:
    return Path(onnx_dir) if onnx_dir else Path(model_dir) / ONNX_DIR


def onnx_model_path(model_dir: str | Path, quantized: bool = False, onnx_dir: str | Path | None = None) -> Path:
    """The exported file `Predictor.from_pretrained(runtime="onnx" | "onnx-int8")` runs; missing is an error
    that says how to make it."""
    path = onnx_folder(model_dir, onnx_dir) / (INT8_FILE if quantized else FP32_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no ONNX model there; run `policy-ner export-onnx {model_dir}"
            f"{f' --output {onnx_dir}' if onnx_dir else ''}` first"
        )
    return path
