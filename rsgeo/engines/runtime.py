"""Compiled image towers: an ONNX file run by ONNX Runtime or OpenVINO.

A tower takes the normalised ``float32`` ``(N, 3, S, S)`` batch of its fixed
shape and returns the features (before unit-length scaling). The thread count
is the process's torch setting (cluster workers share the cores through it).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.engines.extras import engine_module
from rsgeo.engines.export import INPUT_NAME

Tower = Callable[[np.ndarray], np.ndarray]
#: OpenVINO's names of rsgeo's precisions.
#: A static int8 file runs its quantised MatMuls in int8 whatever the hint; the hint sets the rest
#: (f32: on ViT-B-32 here 67 chips/s against 56 with bf16 for the ops left unquantised).
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


def onnxruntime_tower(path: Path, *, threads: int) -> Tower:
    """``path`` in an ONNX Runtime CPU session."""
    ort = engine_module("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: rsgeo reports what matters itself
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {INPUT_NAME: x})[0]
        return out

    return run


@functools.cache
def openvino_core() -> Any:
    """The process's one OpenVINO ``Core``, kept until the process ends.

    Each ``Core`` loads its own CPU plugin, and the plugin replaces the calling
    thread's alternate signal stack when it starts and puts back the one it found
    when it is destroyed. Two plugins destroyed in the order they were made leave
    the main thread's alternate stack pointing at freed memory, and the next
    signal delivered there (a Ctrl-C) is a segmentation fault of the whole
    process. One ``Core`` for the whole process starts one plugin, never destroyed.
    """
    return engine_module("openvino").Core()


def openvino_tower(path: Path, *, precision: str, threads: int, blobs: Path | None) -> tuple[Tower, str]:
    """``path`` compiled by OpenVINO for the CPU at ``precision``; also the precision it really runs at.

    ``blobs`` is OpenVINO's model cache (``CACHE_DIR``): the compiled model is
    kept there and a later run loads it instead of compiling again.
    """
    config: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    if blobs is not None:
        blobs.mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(blobs)
    compiled = openvino_core().compile_model(str(path), "CPU", config)
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type: f32, bf16, f16
    ran = str(hint.get_type_name()) if hasattr(hint, "get_type_name") else str(hint)
    ran_as = "int8" if precision == "int8" else {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(ran, ran)
    request = compiled.create_infer_request()
    lock = threading.Lock()  # an infer request serves one call at a time

    def run(x: np.ndarray) -> np.ndarray:
        with lock:
            out = request.infer({0: x})
            return np.array(out[0], dtype=np.float32, copy=True)

    return run, ran_as
