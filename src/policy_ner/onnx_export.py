"""A model directory's network as ONNX, and ONNX Runtime to run it: the emission-logits graph
(decoding, CRF included, stays in the `Predictor`), in fp32 and dynamically quantized to INT8.

The graph takes `input_ids`, `attention_mask` and `token_type_ids` (int64, dynamic batch and
sequence axes) and returns `logits` (float32, batch x sequence x tags). It is traced with torch's
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

from .files import atomic_write_bytes

RUNTIMES = ("torch", "onnx", "onnx-int8")
"""What `Predictor.from_pretrained` can run a model directory on."""
ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
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


def cpu_session(path: str | Path, threads: int = 0):
    """An ONNX Runtime session on the CPU with `threads` intra-op threads (0: one per available core).
    Its threads do not spin-wait after a run: prediction alternates ONNX runs with torch and numpy
    work, which spinning threads would starve of the same cores."""
    import onnxruntime

    from .inference import available_cores

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = available_cores() if threads <= 0 else threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntime:
    """An exported logits graph (`onnx_export.export_onnx`) run by ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = Path(path)
        self.session = cpu_session(path, threads)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask,
                                             "token_type_ids": token_type_ids})[0]


def onnx_folder(model_dir: str | Path, onnx_dir: str | Path | None = None) -> Path:
    return Path(onnx_dir) if onnx_dir else Path(model_dir) / ONNX_DIR


def onnx_model_path(model_dir: str | Path, quantized: bool = False, onnx_dir: str | Path | None = None) -> Path:
    """The exported file `Predictor.from_pretrained(runtime="onnx" | "onnx-int8")` runs; missing is an error
    that says how to make it."""
    path = onnx_folder(model_dir, onnx_dir) / (INT8_FILE if quantized else FP32_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ONNX model there; run `policy-ner export-onnx {model_dir}"
                                f"{f' --output {onnx_dir}' if onnx_dir else ''}` first")
    return path


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

    from . import modeling  # noqa: F401  (registers the model type with the Auto classes)
    from .inference import TorchRuntime

    started = time.perf_counter()
    folder = onnx_folder(model_dir, output)
    # eager attention: the same arithmetic as SDPA, but SDPA's trace adds Where/IsNaN masking nodes that
    # cost ONNX Runtime about 8% of the INT8 graph's time
    model = AutoModelForTokenClassification.from_pretrained(model_dir, attn_implementation="eager")
    graph = _LogitsOnly(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        buffer = io.BytesIO()
        torch.onnx.export(graph, _example_inputs(model, 2, 16), buffer, dynamo=False,
                          input_names=list(INPUT_NAMES), output_names=["logits"], opset_version=OPSET,
                          dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, "logits")})
    graph.eval()  # the exporter restores the wrapper's mode, and with it the model's
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=folder) as scratch:
        fp32_scratch, int8_scratch = Path(scratch) / FP32_FILE, Path(scratch) / INT8_FILE
        fp32_scratch.write_bytes(buffer.getvalue())
        check = tuple(t.numpy() for t in _example_inputs(model, 3, 41))
        difference = float(np.abs(OnnxRuntime(fp32_scratch, threads=1).logits(*check)
                                  - TorchRuntime(model).logits(*check)).max())
        if difference > PARITY_TOLERANCE:
            raise ValueError(f"{model_dir}: the exported graph's logits differ from torch's by {difference:.2e}")
        with quiet_root_logger():  # quantize_dynamic's advice to pre-process, on the root logger
            quantize_dynamic(fp32_scratch, int8_scratch, weight_type=QuantType.QInt8,
                             op_types_to_quantize=QUANTIZED_OPS)
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

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _example_inputs(model, batch: int, length: int) -> tuple[torch.Tensor, ...]:
    """Windows of random ids and token types; the last one padded to half the length."""
    generator = torch.Generator().manual_seed(0)
    config = model.config
    input_ids = torch.randint(5, config.vocab_size, (batch, length), generator=generator)
    token_type_ids = torch.randint(0, config.type_vocab_size, (batch, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, length // 2:] = 0
    input_ids[-1, length // 2:] = config.pad_token_id or 0
    token_type_ids[-1, length // 2:] = 0
    return input_ids, attention_mask, token_type_ids
