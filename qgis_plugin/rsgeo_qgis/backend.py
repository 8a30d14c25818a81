"""Where rsgeo runs: in QGIS's own Python, or in an external Python environment.

Deep-learning plugins usually ask users to install torch into QGIS's Python,
which fails often (Windows/macOS installers, no admin rights, proxies). rsgeo's
plugin does not need that: when QGIS's Python cannot import rsgeo (or torch),
it runs rsgeo as a subprocess of a Python environment that has it, found from
(in order) the plugin setting, the ``RSGEO_PYTHON`` environment variable,
an ``rsgeo`` command on ``PATH`` and a few well-known environment folders.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .definitions.options import SETTINGS_MENU_ITEM
from .settings import PluginSettings

ENV_VAR = "RSGEO_PYTHON"
#: How rsgeo names options in its messages (rsgeo.errors.STYLE_ENV).
OPTION_STYLE_ENV = "RSGEO_OPTION_STYLE"

# Runs the console entry point declared in rsgeo's pyproject (``rsgeo = rsgeo.cli:main``),
# so it works whether or not the installed rsgeo has a ``__main__`` module.
_CLI_SHIM = "import sys; sys.argv[0] = 'rsgeo'; from rsgeo.cli import main; sys.exit(main())"
_PROBE = (
    "import json, sys, rsgeo; "
    "print(json.dumps({'version': getattr(rsgeo, '__version__', 'unknown'), "
    "'python': sys.version.split()[0]}))"
)

# Variables QGIS sets for its own Python/GDAL/PROJ that break another environment
# (a foreign PYTHONHOME stops the interpreter starting; a foreign PROJ_DATA makes
# pyproj's bundled PROJ fail with a database version error).
_FOREIGN_VARS = (
    "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONUSERBASE",
    "GDAL_DATA", "GDAL_DRIVER_PATH", "PROJ_LIB", "PROJ_DATA", "QGIS_PREFIX_PATH",
)


class BackendError(RuntimeError):
    """No usable rsgeo was found; the message says what to install where."""


@dataclass(frozen=True)
class Backend:
    """A way to run rsgeo.

    ``kind`` is ``inprocess`` (import rsgeo in QGIS's Python) or ``external``
    (a subprocess of ``python``).
    """

    kind: str
    python: str | None
    found_by: str
    version: str

    @property
    def external(self) -> bool:
        return self.kind == "external"

    def cli_argv(self, args: list[str]) -> list[str]:
        if self.python is None:
            raise BackendError("the in-process backend runs no subprocess")
        return [self.python, "-c", _CLI_SHIM, *args]

    def worker_argv(self) -> list[str]:
        if self.python is None:
            raise BackendError("the in-process backend runs no subprocess")
        return [self.python, "-u", "-m", "rsgeo.worker"]

    def describe(self) -> str:
        if self.kind == "inprocess":
            return f"rsgeo {self.version} in QGIS's Python ({self.found_by})"
        return f"rsgeo {self.version} in {self.python} (found by {self.found_by})"


def subprocess_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an external rsgeo: QGIS's own Python/GDAL/PROJ variables removed."""
    env = dict(os.environ if environ is None else environ)
    for name in _FOREIGN_VARS:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env[OPTION_STYLE_ENV] = "qgis"  # rsgeo's messages then name the algorithms' fields, not CLI flags
    return env


def neutral_cwd() -> str:
    """Where rsgeo subprocesses start: not QGIS's working directory, which may hold a checkout
    whose ``rsgeo`` folder would shadow (or fake) the installed package."""
    return tempfile.gettempdir()


def popen_platform_kwargs() -> dict[str, object]:
    """No console window on Windows; a process group of its own elsewhere (for a clean kill)."""
    if os.name == "nt":
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def inprocess_status() -> tuple[bool, bool]:
    """(rsgeo importable, torch importable) in QGIS's Python, without importing either."""
    return _has_module("rsgeo"), _has_module("torch")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_probe_cache: dict[tuple[str, float], str] = {}
_probe_lock = threading.Lock()


def probe_python(python: str, *, timeout: float = 120.0) -> str:
    """The rsgeo version importable by ``python``; BackendError saying why not otherwise."""
    path = Path(python).expanduser()
    if not path.is_file():
        raise BackendError(f"{python} does not exist (or is not a file)")
    key = (str(path), path.stat().st_mtime)
    with _probe_lock:
        if key in _probe_cache:
            return _probe_cache[key]
    try:
        proc = subprocess.run(
            [str(path), "-c", _PROBE],
            capture_output=True, text=True, timeout=timeout, env=subprocess_env(), cwd=neutral_cwd(),
            stdin=subprocess.DEVNULL, **popen_platform_kwargs(),  # type: ignore[arg-type]
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"{python} could not be run: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise BackendError(f"{python} cannot import rsgeo: {last}")
    try:
        version = str(json.loads(proc.stdout.strip().splitlines()[-1])["version"])
    except (IndexError, KeyError, ValueError):
        raise BackendError(f"{python} printed something unexpected when importing rsgeo: {proc.stdout!r}") from None
    with _probe_lock:
        _probe_cache[key] = version
    return version


def python_for_script(script: str) -> str | None:
    """The interpreter behind an installed console script (``rsgeo`` on PATH)."""
    p = Path(script).resolve()
    names = ("python.exe",) if os.name == "nt" else ("python", "python3")
    for folder in (p.parent, p.parent.parent):
        for name in names:
            if (folder / name).is_file():
                return str(folder / name)
    try:
        with open(p, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and Path(parts[0]).name == "env" and len(parts) > 1:
            return shutil.which(parts[1])
        if parts and Path(parts[0]).is_file():
            return parts[0]
    return None


def well_known_pythons(home: Path | None = None) -> list[str]:
    """Environment folders the install guide (docs/qgis.md) suggests, plus common conda ones."""
    home = home or Path.home()
    exe = Path("Scripts", "python.exe") if os.name == "nt" else Path("bin", "python")
    conda_exe = Path("python.exe") if os.name == "nt" else Path("bin", "python")
    out = [home / "rsgeo-env" / exe, home / ".venvs" / "rsgeo" / exe, home / ".local" / "pipx" / "venvs" / "rsgeo" / exe]
    for conda in ("miniforge3", "mambaforge", "miniconda3", "anaconda3"):
        out.append(home / conda / "envs" / "rsgeo" / conda_exe)
    return [str(p) for p in out]


def _candidates(settings: PluginSettings, environ: dict[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(explicit, detected) interpreters as (path, how it was found)."""
    explicit: list[tuple[str, str]] = []
    if settings.python.strip():
        explicit.append((settings.python.strip(), "the plugin setting"))
    if environ.get(ENV_VAR, "").strip():
        explicit.append((environ[ENV_VAR].strip(), f"the {ENV_VAR} environment variable"))
    detected: list[tuple[str, str]] = []
    script = shutil.which("rsgeo", path=environ.get("PATH"))
    if script:
        py = python_for_script(script)
        if py:
            detected.append((py, f"the rsgeo command on PATH ({script})"))
    detected += [(p, "a well-known environment folder") for p in well_known_pythons() if Path(p).is_file()]
    return explicit, detected


def find_backend(settings: PluginSettings, *, environ: dict[str, str] | None = None) -> Backend:
    """Choose how to run rsgeo for ``settings`` (see the module docstring); BackendError if none."""
    environ = dict(os.environ if environ is None else environ)
    has_rsgeo, has_torch = inprocess_status()
    if settings.backend == "inprocess":
        if not has_rsgeo:
            raise BackendError(
                "the plugin is set to run rsgeo inside QGIS, but QGIS's Python cannot import rsgeo. "
                + install_hint()
            )
        return _inprocess("the plugin setting")
    explicit, detected = _candidates(settings, environ)
    problems: list[str] = []
    for python, how in explicit:
        try:
            return Backend("external", str(Path(python).expanduser()), how, probe_python(python))
        except BackendError as exc:
            # An interpreter the user named explicitly and that does not work is an error to
            # report, not something to silently route around.
            raise BackendError(f"the Python set by {how} is not usable: {exc}. " + install_hint()) from None
    if settings.backend == "auto" and has_rsgeo and has_torch:
        return _inprocess("rsgeo and torch import in QGIS's Python")
    for python, how in detected:
        try:
            return Backend("external", python, how, probe_python(python))
        except BackendError as exc:
            problems.append(str(exc))
    if settings.backend == "auto" and has_rsgeo:
        return _inprocess("rsgeo imports in QGIS's Python (torch does not: only test models will run)")
    details = (" Tried: " + "; ".join(problems) + ".") if problems else ""
    raise BackendError(
        f"rsgeo is not available: QGIS's Python ({sys.version.split()[0]}) cannot import it and no "
        f"external Python environment with rsgeo was found.{details} " + install_hint()
    )


def _inprocess(reason: str) -> Backend:
    import rsgeo  # noqa: PLC0415 - only when chosen

    return Backend("inprocess", None, reason, str(getattr(rsgeo, "__version__", "unknown")))


def install_hint() -> str:
    if os.name == "nt":
        py, env_py = "py -3.11", r"%USERPROFILE%\rsgeo-env\Scripts\python.exe"
        pip = r"%USERPROFILE%\rsgeo-env\Scripts\pip"
    else:
        py, env_py, pip = "python3", "~/rsgeo-env/bin/python", "~/rsgeo-env/bin/pip"
    return (
        "Install rsgeo into its own Python environment (not into QGIS's): "
        f"`{py} -m venv ~/rsgeo-env` then `{pip} install rsgeo`; the plugin finds {env_py} by itself, "
        f"or set its path in Plugins ▸ rsgeo ▸ {SETTINGS_MENU_ITEM} ▸ Python interpreter "
        f"(or in the {ENV_VAR} environment variable)."
    )
