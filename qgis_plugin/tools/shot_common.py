"""Shared by the screenshot start-up scripts (run by QGIS with --code): the window, a feedback
that keeps the run's messages, and the picture taken once the map is drawn."""

import os
import subprocess
from collections.abc import Callable

import qgis.utils
from qgis.core import QgsApplication, QgsProcessingFeedback, QgsProject
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QDockWidget

iface = qgis.utils.iface
OUT = os.environ["RSGEO_SHOT_OUT"]


def prepare_window() -> None:
    """The main window over the whole virtual screen (Xvfb has no window manager), no browser panel."""
    window = iface.mainWindow()
    window.setGeometry(0, 0, 1600, 1000)
    for name in ("Browser", "Browser2"):
        browser = window.findChild(QDockWidget, name)
        if browser is not None:
            browser.hide()


class LogFeedback(QgsProcessingFeedback):
    """Keeps what a Processing run says, to write to RSGEO_SHOT_LOG."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(info)

    def pushCommandInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.lines.append("ERROR: " + error)

    def setProgressText(self, text: str) -> None:  # noqa: N802
        if not self.lines or self.lines[-1] != text:
            self.lines.append(text)

    def write(self) -> None:
        with open(os.environ["RSGEO_SHOT_LOG"], "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")


def shooter(before: Callable[[], None] | None = None, *, clear: bool = True) -> Callable[[], None]:
    """A function that (once) lets Qt settle, takes the screenshot to RSGEO_SHOT_OUT and quits QGIS."""
    done = False

    def shoot() -> None:
        nonlocal done
        if done:
            return
        done = True
        if before is not None:
            before()
        for _ in range(30):
            QCoreApplication.processEvents()
        subprocess.run(["import", "-window", "root", OUT], check=False)
        if clear:
            QgsProject.instance().clear()  # QGIS 3.22 may crash on exit with layers loaded
        QgsApplication.exit(0)

    return shoot
