"""The optional engines: whether each is installed, its version, and the pip line when it is not.

ONNX Runtime and OpenVINO are extras (``pip install 'rsgeo[onnxruntime]'``,
``'rsgeo[openvino]'``); both also need ``onnx`` and torch's ONNX exporter to
write the file they run, and OpenVINO's static int8 needs ONNX Runtime's
quantizer (in its extra). Nothing here imports an engine until it is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from rsgeo.errors import MissingDependencyError

#: Engine → the modules it needs (the first is the engine itself).
MODULES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "onnx"),
}


def pip_line(engine: str) -> str:
    """The command that installs ``engine``'s extra."""
    return f"pip install 'rsgeo[{engine}]'"


def installed(engine: str) -> bool:
    """Whether every module ``engine`` needs can be imported (torch always is)."""
    if engine == "torch":
        return True
    try:
        return all(importlib.util.find_spec(name) is not None for name in MODULES[engine])
    except (ImportError, ValueError):
        return False


def require(engine: str, *, needed_by: str | None = None) -> ModuleType:
    """Import ``engine``'s module, or fail with one line holding the pip command.

    ``needed_by`` names what needs ``engine``'s modules when it is not ``engine``
    itself (``"openvino int8"``: ONNX Runtime's quantizer): the line then names its extra.
    """
    try:
        for name in MODULES[engine][1:]:
            importlib.import_module(name)
        return importlib.import_module(MODULES[engine][0])
    except ImportError:
        if needed_by is not None:
            raise MissingDependencyError(
                f"{needed_by} needs {engine}, which is not installed; install it with: "
                f"{pip_line(needed_by.split()[0])}"
            ) from None
        raise MissingDependencyError(
            f"the {engine} engine is not installed; install it with: {pip_line(engine)}"
        ) from None


def engine_module(engine: str) -> ModuleType:
    """``engine``'s own module, to run a file: ``onnx``, which only an export needs (a second of a warm
    start), is not imported; a missing module of the extra still fails with the pip line."""
    if not installed(engine):
        require(engine)  # raises the line naming the extra
    return importlib.import_module(MODULES[engine][0])


def version(engine: str) -> str:
    """``engine``'s version string (imports the engine's own module)."""
    module = engine_module(engine) if engine != "torch" else importlib.import_module("torch")
    return str(getattr(module, "__version__", "unknown"))
