"""Exceptions raised by rsgeo.

Every error rsgeo raises on purpose derives from :class:`RsgeoError`; each
subclass also inherits the builtin it refines, so ``except ValueError`` keeps
working for callers that do not know rsgeo. Messages name the bad value and
say what to do next: the CLI prints them as a single line.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from rsgeo.definitions.options import STYLES, Style, ref, render

__all__ = ["gdal_reason", "opt", "spelt", "option_style", "set_option_style", "current_option_style"]

#: Option markers in messages: ``f"{opt('batch_size')} must be at least 1"``.
opt = ref

_STYLE: contextvars.ContextVar[Style | None] = contextvars.ContextVar("rsgeo_option_style", default=None)
#: Environment variable a front end sets for the rsgeo processes it starts (``cli``, ``python``, ``qgis``).
STYLE_ENV = "RSGEO_OPTION_STYLE"


def current_option_style() -> Style:
    """How messages name options here: set by the front end, else ``$RSGEO_OPTION_STYLE``, else ``python``."""
    style = _STYLE.get()
    if style is not None:
        return style
    env = os.environ.get(STYLE_ENV, "")
    for known in STYLES:  # narrows the environment's text to a Style
        if env == known:
            return known
    return "python"


def set_option_style(style: Style) -> None:
    """Name options as ``style`` does in messages shown from now on, in this context (the CLI's ``main``)."""
    if style not in STYLES:
        raise ValueError(f"unknown option style {style!r}; use one of {', '.join(STYLES)}")
    if os.environ.get(STYLE_ENV) in STYLES:  # the front end that started this process decides
        return
    _STYLE.set(style)


def spelt(text: str) -> str:
    """``text`` with its option markers spelt for the current front end (for log messages, shown at once)."""
    return render(text, current_option_style())


@contextlib.contextmanager
def option_style(style: Style) -> Iterator[None]:
    """Name options as ``style`` does in messages shown inside the block."""
    if style not in STYLES:
        raise ValueError(f"unknown option style {style!r}; use one of {', '.join(STYLES)}")
    token = _STYLE.set(style)
    try:
        yield
    finally:
        _STYLE.reset(token)


class RsgeoError(Exception):
    """Root of every error rsgeo raises deliberately.

    A message may name options with :func:`opt` markers; they are spelt the
    way the current front end spells them (:func:`current_option_style`)
    whenever the message is shown.
    """

    def __str__(self) -> str:
        return render(super().__str__(), current_option_style())


class SceneError(RsgeoError, ValueError):
    """The scene cannot be read or is unusable as given."""


class NotGeoreferencedError(SceneError):
    """The scene has no CRS or no geotransform."""


class OptionError(RsgeoError, ValueError):
    """A user option is invalid (chip size, bands, class names, ...)."""


class ModelError(RsgeoError, RuntimeError):
    """A model cannot be found, downloaded, or loaded."""


class WeightsNotAvailableError(ModelError):
    """Weights are not cached and cannot be downloaded (offline)."""


class OutputError(RsgeoError, OSError):
    """The output cannot be written where asked."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class ResultError(RsgeoError, ValueError):
    """A result GeoPackage is not an rsgeo result or does not match the request."""


class DamagedResultError(ResultError):
    """A stored result is damaged (missing or truncated tables, bad metadata, a corrupt page)."""


class OutputBusyError(OutputError):
    """Another run is writing the same output (its lock file is held); the command line exits 75."""


class MissingDependencyError(RsgeoError, ImportError):
    """An optional extra is needed; the message holds the pip line."""


class Cancelled(RsgeoError):
    """The caller's cancellation check asked the work to stop."""


class ClusterError(RsgeoError, RuntimeError):
    """The cluster cannot be reached, has no workers, or lost a task for good."""


def gdal_reason(exc: BaseException) -> str:
    """The most specific line of a GDAL error (rasterio chains the low-level
    cause, e.g. ``TIFFFillTile: Read error ... got 0 bytes``, under a generic
    ``Read failed``)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc.args[-1] if exc.args else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ReferenceDataError(RsgeoError, ValueError):
    """Reference data (``rsgeo assess --reference``) cannot be read, placed over the map, or has no class."""
