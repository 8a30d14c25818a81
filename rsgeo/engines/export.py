"""A torch image tower → an ONNX file at one fixed batch shape, and its int8 derivative.

The export is traced at the run's one model batch shape
(:func:`rsgeo.encoding.model_batch_shape`): every batch of a run has that
shape (partial batches are padded by :func:`rsgeo.encoding.encode_batch`), so
a static-shape file serves the whole run, and the engines plan their kernels
for exactly that shape. A run at another batch size exports another file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.encoders.torch_clip import TorchClipEncoder
from rsgeo.errors import ModelError

#: ONNX opset of the export: every op of the open_clip and transformers CLIP towers, read by
#: ONNX Runtime ≥ 1.12 and OpenVINO ≥ 2022.1.
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "features"
#: torch's ONNX exporter keeps global state: one export at a time per process (other processes
#: exporting the same key are kept apart by the cache's atomic renames).
_EXPORT_LOCK = threading.Lock()


def weights_fingerprint(encoder: TorchClipEncoder) -> str:
    """The weights' SHA-256: the file's when known, else one of the image tower's tensors.

    Built-in architectures without a checkpoint have seeded random weights and
    no file; hashing the tensors still tells two such models apart.
    """
    if encoder.identity.weights_sha256:
        return encoder.identity.weights_sha256
    h = hashlib.sha256()
    for name, tensor in sorted(encoder.image_tower().state_dict().items()):
        h.update(name.encode("utf-8"))
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "tensors:" + h.hexdigest()


def tower_name(encoder: TorchClipEncoder) -> str:
    """The image tower's class, part of the export key."""
    return type(encoder.image_tower()).__qualname__


def onnx_key_fields(model_id: str, weights: str, tower: str, size: int, batch: int) -> dict[str, str | int | float | None]:
    """What decides the bytes of the exported ONNX file: the model, its weights' fingerprint, the tower's
    class, the input size and batch shape, torch and the exporter."""
    import torch

    return {
        "model_id": model_id,
        "weights_sha256": weights,
        "tower": tower,
        "size": size,
        "batch": batch,
        "torch": str(torch.__version__),
        "opset": OPSET,
        "exporter": "torchscript",
        "precision": "fp32",
    }


def export_onnx(encoder: TorchClipEncoder, batch: int, path: Path) -> None:
    """Write ``encoder``'s image tower, fp32, input ``(batch, 3, S, S)``, to ``path``."""
    import torch

    tower = encoder.image_tower()
    size = encoder.image_spec.size
    example = torch.zeros(batch, 3, size, size)
    try:
        # Traced with autograd on: under no_grad, nn.MultiheadAttention takes its fused fast path
        # (aten::_native_multi_head_attention), which has no ONNX form.
        with _EXPORT_LOCK, torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                tower, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types for an op it cannot write
        raise ModelError(
            f"cannot export the image tower of {encoder.identity.model_id} to ONNX: {_first_line(exc)}; "
            "run it with --engine torch"
        ) from exc


#: How the int8 file is made (part of its cache folder's name).
INT8_SCHEME = "dynamic-s8-per-channel-7bit"


def quantize_int8(source: Path, path: Path) -> None:
    """Dynamic int8 quantisation of an fp32 ONNX file (ONNX Runtime's; weights int8 per output channel).

    Dynamic: activations are quantised per batch at run time, so no
    calibration chips are needed and any scene gets its own ranges. Weights
    use 7 bits (``reduce_range``): without VNNI (AVX2, AVX-512 without VNNI)
    the u8×s8 kernels add pairs in saturating int16, which full-range weights
    overflow — measured on ViT-B-32 on an AVX2 CPU: min cosine to fp32 0.992
    per tensor at 8 bits, 0.9997 per channel at 7 bits.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quantizer_quiet():
            quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


#: How the static int8 file is made (part of its cache folder's name): ONNX Runtime's quantizer writes
#: QuantizeLinear/DequantizeLinear pairs around every MatMul, Gemm and Conv (weights int8 per output
#: channel, activations uint8 with min–max ranges calibrated on chips of the scene), which OpenVINO
#: compiles into int8 kernels.
STATIC_INT8_SCHEME = "static-qdq-u8s8-per-channel-minmax"


def quantize_int8_static(source: Path, path: Path, calibration: np.ndarray) -> None:
    """Static int8 quantisation of an fp32 ONNX file, calibrated on ``calibration``.

    ``calibration`` is one normalised ``float32`` batch of the file's fixed
    shape (:func:`rsgeo.engines.calibration.calibration_ids` picks its chips).
    Static: every activation's range is fixed here, so a run computes no
    ranges (what makes OpenVINO's int8 fast) and every batch of every run with
    this file quantises alike; the ranges are those of the calibration chips
    (min–max: nothing of them is clipped).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class OneBatch(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: np.ascontiguousarray(calibration, np.float32)}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with _quantizer_quiet():
        quantize_static(
            str(source), str(path), OneBatch(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
        )


@contextlib.contextmanager
def _quantizer_quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer without its advice: it logs on the root logger (one line a node:
    "Bias of Gemm node ... is not constant", "consider to run pre-processing") and warns."""

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def image_tower_of(encoder: Any) -> TorchClipEncoder | None:
    """``encoder`` when it has a torch image tower an engine can export, else ``None``."""
    return encoder if isinstance(encoder, TorchClipEncoder) else None
