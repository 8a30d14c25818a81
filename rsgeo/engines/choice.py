"""Which engine runs the image tower, at which precision: ``--engine`` and ``--precision``.

The rules (docs/engines.md has the measured table behind them):

* an explicit engine must be installed (else one line with the pip command) and
  must serve the precision: ``torch`` fp32/bf16/fp16, ``onnxruntime`` fp32/int8
  (dynamic), ``openvino`` fp32/bf16/int8 (static, calibrated on the scene; it
  also needs ONNX Runtime's quantizer); ONNX Runtime and OpenVINO run on the CPU only;
* ``--engine auto`` takes, per precision, the fastest installed engine measured on
  the CPU: fp32 → torch (ONNX Runtime and OpenVINO fp32 are within ±7 % of torch,
  not worth an export), bf16 → OpenVINO where the CPU has bf16 in hardware
  (4.3x torch there) else torch, fp16 → torch, int8 → OpenVINO's static int8
  (faster than ONNX Runtime's dynamic int8 end to end in both runs measured on
  an AVX-512 VNNI CPU without AMX: 1.1x and 1.9x) else ONNX Runtime; on a GPU, torch. It never lowers
  the precision asked for;
* ``--precision auto`` asks for the fastest precision within the deviation budget:
  bf16 on OpenVINO where the CPU has AMX or AVX-512 BF16, OpenVINO is installed
  and the model passes the budget check on the first batch (see
  :mod:`rsgeo.engines.encoder`), else fp32. It never picks int8 (its deviation is
  larger; ask for it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rsgeo.engines import extras
from rsgeo.engines.cpu import has_bf16_hardware
from rsgeo.errors import MissingDependencyError, ModelError, OptionError, opt

ENGINES = ("auto", "torch", "onnxruntime", "openvino")
#: What each engine runs the image tower at.
SERVES: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "fp16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
#: ``--engine auto``'s candidates per precision on the CPU, fastest first (measured).
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "fp32": ("torch",),
    "bf16": ("openvino", "torch"),
    "fp16": ("torch",),
    "int8": ("openvino", "onnxruntime"),
}


@dataclass(frozen=True)
class EngineChoice:
    """The engine and precision a run uses; ``check_budget``: ``--precision auto`` chose bf16,
    to be confirmed on the first batch."""

    engine: str
    precision: str
    check_budget: bool = False


def choose(
    engine: str,
    precision: str,
    *,
    device: str,
    exportable: bool,
    model: str,
    installed: Callable[[str], bool] = extras.installed,
    bf16_hardware: bool | None = None,
) -> EngineChoice:
    """The engine and precision for ``engine``/``precision`` as asked (see the module docstring).

    ``exportable``: the model has a torch image tower an engine can export
    (not the ``test:`` encoders).
    """
    if engine not in ENGINES:
        raise OptionError(f"unknown {opt('engine')} {engine!r}; use one of {', '.join(ENGINES)}")
    on_cpu = device == "cpu"
    bf16_native = has_bf16_hardware() if bf16_hardware is None else bf16_hardware
    if engine not in ("auto", "torch"):
        if not on_cpu:
            raise OptionError(
                f"{opt('engine', engine)} runs on the CPU, not {device}; use {opt('engine', 'torch')} there"
            )
        if not exportable:
            raise ModelError(
                f"{opt('engine', engine)} runs open_clip and transformers CLIP image towers; {model} has none "
                f"(use {opt('engine', 'torch')})"
            )
        if not installed(engine):
            raise MissingDependencyError(
                f"the {engine} engine is not installed; install it with: {extras.pip_line(engine)}"
            )
        if engine == "openvino" and precision == "int8" and not installed("onnxruntime"):
            raise MissingDependencyError(
                f"openvino int8 needs onnxruntime's quantizer, which is not installed; install it with: "
                f"{extras.pip_line('openvino')}"
            )
    if precision == "auto":
        wants_openvino = engine in ("auto", "openvino")
        if on_cpu and exportable and wants_openvino and bf16_native and installed("openvino"):
            return EngineChoice("openvino", "bf16", check_budget=True)
        return EngineChoice("torch" if engine == "auto" else engine, "fp32")
    if engine != "auto":
        if precision not in SERVES[engine]:
            others = [e for e, ps in SERVES.items() if precision in ps]
            raise OptionError(
                f"{opt('engine', engine)} runs {' or '.join(SERVES[engine])}, not {opt('precision', precision)}; "
                f"use {' or '.join(opt('engine', e) for e in others)} for {precision}"
            )
        return EngineChoice(engine, precision)
    if not on_cpu or not exportable:
        if precision == "int8":
            where = f"on {device}" if not on_cpu else f"for {model}"
            raise OptionError(f"{opt('precision', 'int8')} runs on ONNX Runtime on the CPU, not {where}")
        return EngineChoice("torch", precision)
    for candidate in AUTO_ORDER[precision]:
        if candidate == "openvino" and precision == "bf16" and not bf16_native:
            continue  # emulated bf16 is slower than fp32: torch's autocast is no worse
        if candidate == "openvino" and precision == "int8" and not installed("onnxruntime"):
            continue  # static int8 is calibrated with ONNX Runtime's quantizer
        if installed(candidate):
            return EngineChoice(candidate, precision)
    needed = AUTO_ORDER[precision][0]
    raise MissingDependencyError(
        f"{opt('precision', precision)} needs the {needed} engine, which is not installed; "
        f"install it with: {extras.pip_line(needed)}"
    )
