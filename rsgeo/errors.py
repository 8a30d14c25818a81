"""Exceptions raised by rsgeo.

Every error rsgeo raises on purpose derives from :class:`RsgeoError`; each
subclass also inherits the builtin it refines, so ``except ValueError`` keeps
working for callers that do not know rsgeo. Messages name the bad value and
say what to do next: the CLI prints them as a single line.
"""

from __future__ import annotations


class RsgeoError(Exception):
    """Root of every error rsgeo raises deliberately."""


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


class MissingDependencyError(RsgeoError, ImportError):
    """An optional extra is needed; the message holds the pip line."""


class Cancelled(RsgeoError):
    """The caller's cancellation check asked the work to stop."""


class ClusterError(RsgeoError, RuntimeError):
    """The cluster cannot be reached, has no workers, or lost a task for good."""
