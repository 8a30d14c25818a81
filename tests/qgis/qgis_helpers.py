"""Helpers for the QGIS plugin tests (imported by conftest and the tests; needs QGIS)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProcessingFeedback,
    QgsRectangle,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication, QSize
from qgis.PyQt.QtGui import QColor, QImage

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "qgis_plugin"
#: The algorithms that read a scene through the model (they have the chip and weights fields).
ENCODING_ALGORITHM_IDS = ("rsgeo:embed", "rsgeo:classify", "rsgeo:textquery", "rsgeo:querybyexample",
                          "rsgeo:classifyzones", "rsgeo:queryzones", "rsgeo:stacsearch")
#: Every algorithm of the provider: those, and the assessment ones, which read only layers.
ALGORITHM_IDS = (*ENCODING_ALGORITHM_IDS, "rsgeo:sample", "rsgeo:assess")


@contextmanager
def set_plugin_settings(**values: Any) -> Iterator[None]:
    """Set ``rsgeo/<key>`` plugin settings for the duration of a test."""
    s = QgsSettings()
    old = {k: s.value(f"rsgeo/{k}") for k in values}
    for k, v in values.items():
        s.setValue(f"rsgeo/{k}", v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                s.remove(f"rsgeo/{k}")
            else:
                s.setValue(f"rsgeo/{k}", v)


class RecordingFeedback(QgsProcessingFeedback):
    """Processing feedback that keeps what the plugin reported."""

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[str] = []
        self.errors: list[str] = []
        self.commands: list[str] = []
        self.progress_values: list[float] = []
        self.progressChanged.connect(self.progress_values.append)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.infos.append(info)
        super().pushInfo(info)

    def pushCommandInfo(self, info: str) -> None:  # noqa: N802
        self.commands.append(info)
        super().pushCommandInfo(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.errors.append(error)
        super().reportError(error, fatalError)

    def rsgeo_pid(self) -> int | None:
        for info in self.infos:
            m = re.search(r"\(process (\d+)\)", info)
            if m:
                return int(m.group(1))
        return None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def render(layers: Sequence[QgsMapLayer], path: Path, *, extent: QgsRectangle | None = None,
           size: int = 400) -> dict[str, int]:
    """Render ``layers`` on white to ``path``; count non-white pixels and distinct colours."""
    settings = QgsMapSettings()
    settings.setLayers(list(layers))
    settings.setDestinationCrs(layers[0].crs())
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setExtent(extent or layers[0].extent())
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image: QImage = job.renderedImage()
    assert image.save(str(path)), path
    white = QColor(255, 255, 255).rgb()
    painted = 0
    colours: set[int] = set()
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            rgb = image.pixel(x, y)
            if rgb != white:
                painted += 1
                colours.add(rgb & 0xFFFFFF)
    return {"painted": painted, "colours": len(colours), "sampled": (image.width() // 2) * (image.height() // 2)}


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Process Qt events until ``condition()`` holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def open_in_dock(dock: Any, opening: Any) -> tuple[Any, list[dict], list[str]]:
    """``opening(dock)`` (a result or a folder), waited for until the panel takes queries: (dock, answers, errors)."""
    answers: list[dict] = []
    errors: list[str] = []
    dock.answered.connect(answers.append)
    dock.failed.connect(errors.append)
    assert opening(dock)
    assert wait_until(lambda: dock.query.isEnabled() or bool(errors), 120), dock.status.text()
    assert not errors, errors
    return dock, answers, errors
