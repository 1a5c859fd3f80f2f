"""A model directory's network as ONNX: the emission-logits graph (decoding, CRF included, stays in the
`Predictor`), in fp32 and dynamically quantized to INT8, run by `runtimes.OnnxRuntime`.

The graph takes `input_ids`, `attention_mask` and `token_type_ids` (int64, dynamic batch and
sequence axes), and `dense_features` (float32, batch x sequence x width) for a model with dense
features, and returns `logits` (float32, batch x sequence x tags). It is traced with torch's
TorchScript-based exporter, which needs no package beyond `onnx`; `export_onnx` checks the fp32 graph
against torch before anything is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write_bytes
from . import network  # noqa: F401  (registers the model type with the Auto classes)
from .runtimes import FP32_FILE, INT8_FILE, OnnxRuntime, TorchRuntime, input_names, onnx_folder

OPSET = 17
PARITY_TOLERANCE = 1e-4
"""Largest difference from torch's logits accepted for the fp32 graph."""


@dataclass(frozen=True)
class OnnxExport:
    fp32: Path
    int8: Path
    max_difference: float
    """Largest |logit| difference between the fp32 graph and torch on the check inputs."""
    seconds: float


QUANTIZED_OPS = ["MatMul"]
"""Only the matrix products are quantized. Quantizing the embedding tables (Gather) too, the default,
makes ONNX Runtime dequantize whole tables on every run, and the INT8 convolution is slower than the
fp32 one: on the default model's network both cost more than quantization saved (measured by
`scripts/benchmark.py --quantization-options`)."""


def export_onnx(model_dir: str | Path, output: str | Path | None = None) -> OnnxExport:
    """Write OUTPUT/model.onnx and OUTPUT/model.int8.onnx (OUTPUT defaults to MODEL_DIR/onnx), each
    atomically, after checking that the fp32 graph gives torch's logits on windows of other shapes than
    the traced ones."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForTokenClassification

    started = time.perf_counter()
    folder = onnx_folder(model_dir, output)
    # eager attention: the same arithmetic as SDPA, but SDPA's trace adds Where/IsNaN masking nodes that
    # cost ONNX Runtime about 8% of the INT8 graph's time
    model = AutoModelForTokenClassification.from_pretrained(model_dir, attn_implementation="eager")
    graph = _LogitsOnly(model).eval()
    names = input_names(getattr(model.config, "dense_size", 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        buffer = io.BytesIO()
        torch.onnx.export(
            graph,
            _example_inputs(model, 2, 16),
            buffer,  # type: ignore[arg-type]  # `f` is annotated as a path; the TorchScript exporter takes files too
            dynamo=False,
            input_names=list(names),
            output_names=["logits"],
            opset_version=OPSET,
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*names, "logits")},
        )
    graph.eval()  # the exporter restores the wrapper's mode, and with it the model's
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=folder) as scratch:
        fp32_scratch, int8_scratch = Path(scratch) / FP32_FILE, Path(scratch) / INT8_FILE
        fp32_scratch.write_bytes(buffer.getvalue())
        check = tuple(t.numpy() for t in _example_inputs(model, 3, 41))
        difference = float(
            np.abs(OnnxRuntime(fp32_scratch, threads=1).logits(*check) - TorchRuntime(model).logits(*check)).max()
        )
        if difference > PARITY_TOLERANCE:
            raise ValueError(f"{model_dir}: the exported graph's logits differ from torch's by {difference:.2e}")
        with quiet_root_logger():  # quantize_dynamic's advice to pre-process, on the root logger
            quantize_dynamic(
                fp32_scratch, int8_scratch, weight_type=QuantType.QInt8, op_types_to_quantize=QUANTIZED_OPS
            )
        fp32 = atomic_write_bytes(folder / FP32_FILE, fp32_scratch.read_bytes())
        int8 = atomic_write_bytes(folder / INT8_FILE, int8_scratch.read_bytes())
    return OnnxExport(fp32, int8, difference, round(time.perf_counter() - started, 1))


@contextlib.contextmanager
def quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _LogitsOnly(torch.nn.Module):
    """The model's forward pass with positional inputs and the logits as its only output."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, dense_features=None):
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            dense_features=dense_features,
        ).logits


def _example_inputs(model, batch: int, length: int) -> tuple[torch.Tensor, ...]:
    """Windows of random ids and token types (and dense features, for a model that takes them); the
    last one padded to half the length."""
    generator = torch.Generator().manual_seed(0)
    config = model.config
    input_ids = torch.randint(5, config.vocab_size, (batch, length), generator=generator)
    token_type_ids = torch.randint(0, config.type_vocab_size, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, length // 2 :] = 0
    input_ids[-1, length // 2 :] = config.pad_token_id or 0
    token_type_ids[-1, length // 2 :] = 0
    dense_size = getattr(config, "dense_size", 0)
    if not dense_size:
        return input_ids, attention_mask, token_type_ids
    dense_features = torch.randn((batch, length, dense_size), generator=generator)
    dense_features[-1, length // 2 :] = 0.0
    return input_ids, attention_mask, token_type_ids, dense_features
