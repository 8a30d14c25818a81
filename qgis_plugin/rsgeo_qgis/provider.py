"""The rsgeo Processing provider (toolbox, modeler, batch mode, qgis_process)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS

ICON = Path(__file__).with_name("icon.svg")


class RsgeoProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "rsgeo"

    def name(self) -> str:
        return "rsgeo"

    def longName(self) -> str:  # noqa: N802
        return "rsgeo — remote-sensing CLIP: land cover and free-text search"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:  # noqa: N802
        return str(ICON)

    def loadAlgorithms(self) -> None:  # noqa: N802
        for cls in ALGORITHMS:
            self.addAlgorithm(cls())
