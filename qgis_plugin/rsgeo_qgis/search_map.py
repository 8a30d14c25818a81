"""The search panel's answer for large results: a similarity raster the worker wrote.

Copying every tile of a result into an in-memory layer on QGIS's main thread
takes ~12 s at 10^6 tiles (and ~6 s per answer to update it). For results
with more than :data:`MAP_TILES` tiles the panel asks the worker for a map
instead (``query`` with ``raster``): the worker scans the embeddings and
writes the similarity of every tile as a COG in the panel's temporary folder,
and sends back only the best tiles and the value breaks. The main thread opens
the file (GDAL reads the header, not the pixels), sets a colour ramp from the
breaks (no statistics are computed here) and lets QGIS's render threads draw
it, from overviews when zoomed out. Each answer goes to a new file; the layer
switches to it in place (same layer, same place in the layer tree).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsColorRampShader,
    QgsCoordinateReferenceSystem,
    QgsDataProvider,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtCore import QTemporaryDir
from qgis.PyQt.QtGui import QColor

from .compat import SHADER_LINEAR
from .definitions.schema import KEY_GRID, GridRecord

#: Results with more tiles than this are answered as a raster (smaller ones as a tile layer).
MAP_TILES = 100_000
#: Answer files kept besides the one shown (a render job may still read the previous one).
KEEP_FILES = 2


@dataclass(frozen=True)
class ResultGrid:
    """What the panel needs of a result's chip grid: its size, CRS and a chip's size."""

    tiles: int
    crs: QgsCoordinateReferenceSystem
    #: A chip's side in CRS units.
    chip_size: float

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "ResultGrid | None":
        try:
            grid = GridRecord.from_dict(meta[KEY_GRID])
        except (KeyError, TypeError, ValueError):
            return None
        a, _b, _c, d, _e, _f = grid.transform
        crs = QgsCoordinateReferenceSystem.fromWkt(grid.crs) if grid.crs else QgsCoordinateReferenceSystem()
        return cls(tiles=grid.n_rows * grid.n_cols, crs=crs, chip_size=grid.size_px * math.hypot(a, d))

    def chip_geometry(self, x: float, y: float) -> QgsGeometry:
        """The chip centred on ``(x, y)`` as an axis-aligned square (for flashing and zooming)."""
        half = self.chip_size / 2
        return QgsGeometry.fromRect(QgsRectangle(x - half, y - half, x + half, y + half))


def similarity_raster_renderer(layer: QgsRasterLayer, breaks: Sequence[float]) -> QgsSingleBandPseudoColorRenderer:
    """Viridis (dark low, yellow high) through the quantile ``breaks``: as many cells per colour step."""
    ramp = QgsStyle.defaultStyle().colorRamp("Viridis")
    n = len(breaks) - 1
    items = []
    for i, value in enumerate(breaks):
        t = i / max(n, 1)
        color = ramp.color(t) if ramp is not None else QColor.fromHsvF(0.7 - 0.55 * t, 0.8, 0.9)
        items.append(QgsColorRampShader.ColorRampItem(float(value), color, f"{value:.3f}"))
    shader_fn = QgsColorRampShader(float(breaks[0]), float(breaks[-1]))
    shader_fn.setColorRampType(SHADER_LINEAR)
    shader_fn.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(float(breaks[0]))
    renderer.setClassificationMax(float(breaks[-1]))
    return renderer


class SimilarityMap:
    """The panel's similarity raster layer, switched to each new answer file."""

    def __init__(self, opacity: float) -> None:
        self.opacity = opacity
        self.layer: QgsRasterLayer | None = None
        self._folder = QTemporaryDir()
        self._count = 0
        self._files: list[str] = []

    def next_path(self) -> str:
        """Where the worker writes the next answer."""
        self._count += 1
        return os.path.join(self._folder.path(), f"answer-{self._count}.tif")

    def show(self, path: str, name: str, breaks: Sequence[float]) -> QgsRasterLayer:
        """Show the answer at ``path`` (in the project; the same layer as before when it is still there)."""
        project = QgsProject.instance()
        if self.layer is not None and project.mapLayer(self.layer.id()) is self.layer:
            self.layer.setDataSource(path, name, "gdal", QgsDataProvider.ProviderOptions())
        else:
            options = QgsRasterLayer.LayerOptions(False, project.transformContext())  # no default style lookup
            self.layer = QgsRasterLayer(path, name, "gdal", options)
            if not self.layer.isValid():
                raise ValueError(f"QGIS cannot open the answer raster {path}")
            project.addMapLayer(self.layer)
        renderer = similarity_raster_renderer(self.layer, breaks)
        renderer.setOpacity(self.opacity)
        self.layer.setRenderer(renderer)
        self.layer.setName(name)
        self.layer.triggerRepaint()
        self._files.append(path)
        for old in self._files[: -1 - KEEP_FILES]:
            _remove_quietly(old)
        del self._files[: -1 - KEEP_FILES]
        return self.layer

    def forget_layer(self, layer_id: str) -> None:
        """The project removed ``layer_id``: the next answer makes a new layer."""
        if self.layer is not None and self.layer.id() == layer_id:
            self.layer = None

    def close(self) -> None:
        """Remove the layer from the project and the answer files from disk."""
        if self.layer is not None:
            layer_id = self.layer.id()
            self.layer = None
            if QgsProject.instance().mapLayer(layer_id) is not None:
                QgsProject.instance().removeMapLayer(layer_id)
        self._folder.remove()
        self._files.clear()


def _remove_quietly(path: str) -> None:
    for p in (path, path + ".aux.xml"):
        try:
            os.remove(p)
        except OSError:
            pass  # still open on a system that locks open files; the folder goes at close
