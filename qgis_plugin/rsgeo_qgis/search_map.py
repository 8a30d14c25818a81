"""The search panel's answer for large results: a similarity raster the worker wrote.

Copying every tile of a result into an in-memory layer on QGIS's main thread
takes ~12 s at 10^6 tiles (and ~6 s per answer to update it). For results
with more than :data:`MAP_TILES` tiles the panel asks the worker for a map
instead (``query`` with ``raster``): the worker scans the embeddings and
writes the similarity of every tile as a COG in the panel's temporary folder,
and sends back only the best tiles and the value breaks. The main thread opens
the file (GDAL reads the header, not the pixels), sets a colour ramp from the
breaks (no statistics are computed here) and lets QGIS's render threads draw
it, from overviews when zoomed out. Each answer goes to a new file, opened as
a layer in a thread and moved to the main thread (as Processing does with the
layers its tasks make): opening a raster on the main thread cost 140-150 ms
there the first time (GDAL and PROJ setting up, the file's CRS looked up). The
new layer takes the old one's place in the layer tree (same group, same
position, same visibility), so to the user the answer layer updates in place.
Land cover of such a result is answered the same way (``classify`` with
``raster``): a paletted class raster, styled from the ``.qml`` the worker
writes beside it (a :class:`SimilarityMap` made with ``palette=True``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsColorRampShader,
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtCore import QCoreApplication, QObject, Qt, QTemporaryDir, pyqtSignal
from qgis.PyQt.QtGui import QColor

from .compat import SHADER_LINEAR
from .definitions.schema import KEY_GRID, GridRecord

#: Results with more tiles than this are answered as a raster (smaller ones as a tile layer).
MAP_TILES = 100_000
#: Answer files kept besides the one shown (a render job may still read the previous one).
KEEP_FILES = 2
_CRS_CACHE: dict[str, QgsCoordinateReferenceSystem] = {}


@dataclass(frozen=True)
class ResultGrid:
    """What the panel needs of a result's chip grid: its size, CRS and a chip's size."""

    tiles: int
    #: The result's CRS as WKT (made a QgsCoordinateReferenceSystem when first needed: PROJ's first
    #: lookup of a CRS costs ~50 ms of the main thread).
    crs_wkt: str
    #: A chip's side in CRS units.
    chip_size: float

    @property
    def crs(self) -> QgsCoordinateReferenceSystem:
        if self.crs_wkt not in _CRS_CACHE:
            _CRS_CACHE[self.crs_wkt] = (QgsCoordinateReferenceSystem.fromWkt(self.crs_wkt) if self.crs_wkt
                                        else QgsCoordinateReferenceSystem())
        return _CRS_CACHE[self.crs_wkt]

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "ResultGrid | None":
        try:
            grid = GridRecord.from_dict(meta[KEY_GRID])
        except (KeyError, TypeError, ValueError):
            return None
        a, _b, _c, d, _e, _f = grid.transform
        return cls(tiles=grid.n_rows * grid.n_cols, crs_wkt=grid.crs or "", chip_size=grid.size_px * math.hypot(a, d))

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


class SimilarityMap(QObject):
    """The panel's similarity raster layer, switched to each new answer file."""

    #: (show number, a QgsRasterLayer now living in the main thread, or None), from the loader thread.
    _loaded = pyqtSignal(int, object)

    def __init__(self, opacity: float, parent: QObject | None = None, *, palette: bool = False) -> None:
        super().__init__(parent)
        self.opacity = opacity
        #: Class rasters: styled from their .qml sidecar (a palette), not from breaks.
        self.palette = palette
        self.layer: QgsRasterLayer | None = None
        self._folder = QTemporaryDir()
        self._count = 0
        self._files: list[str] = []
        self._shows = 0
        self._pending: tuple[int, str, str, Sequence[float], Callable[[Any], None], bool] | None = None
        self._loaded.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)

    def next_path(self) -> str:
        """Where the worker writes the next answer."""
        self._count += 1
        return os.path.join(self._folder.path(), f"answer-{self._count}.tif")

    def show(self, path: str, name: str, breaks: Sequence[float], done: Callable[[Any], None], *,
             own: bool = True) -> None:
        """Show the answer at ``path``, then call ``done(layer)`` (``done(None)``: QGIS cannot read it).

        The layer is opened off the main thread; ``done`` comes from the event loop.
        ``own``: the file is one of the panel's answers (removed when superseded);
        ``False`` for a file the panel only shows (a class raster stored beside the result).
        """
        self._shows += 1
        project = QgsProject.instance()
        self._pending = (self._shows, path, name, breaks, done, own)
        show, context, main = self._shows, project.transformContext(), QCoreApplication.instance().thread()

        def load() -> None:
            layer = QgsRasterLayer(path, name, "gdal", QgsRasterLayer.LayerOptions(False, context))
            layer.moveToThread(main)  # from the thread that made it, as QObject requires
            self._loaded.emit(show, layer if layer.isValid() else None)

        threading.Thread(target=load, name="rsgeo-answer-layer", daemon=True).start()

    def _on_loaded(self, show: int, layer: Any) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending[0] != show:
            if pending is not None:
                self._pending = pending  # an older load finished after a newer one began
            return
        _show, path, name, breaks, done, own = pending
        if layer is None:
            done(None)
            return
        old, self.layer = self.layer, layer
        self._styled(path, name, breaks, own)
        _replace_in_tree(old, layer)
        done(layer)

    def _styled(self, path: str, name: str, breaks: Sequence[float], own: bool = True) -> QgsRasterLayer:
        assert self.layer is not None
        if self.palette:
            self.layer.loadNamedStyle(os.path.splitext(path)[0] + ".qml")
            renderer = self.layer.renderer()
            if renderer is not None:
                renderer.setOpacity(self.opacity)
        else:
            renderer = similarity_raster_renderer(self.layer, breaks)
            renderer.setOpacity(self.opacity)
            self.layer.setRenderer(renderer)
        self.layer.setName(name)
        self.layer.triggerRepaint()
        if not own:
            return self.layer
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
        self._pending = None
        if self.layer is not None:
            layer_id = self.layer.id()
            self.layer = None
            if QgsProject.instance().mapLayer(layer_id) is not None:
                QgsProject.instance().removeMapLayer(layer_id)
        self._folder.remove()
        self._files.clear()


def _replace_in_tree(old: QgsRasterLayer | None, new: QgsRasterLayer) -> None:
    """Put ``new`` in the project where ``old`` is (group, position, visibility) and remove ``old``."""
    project = QgsProject.instance()
    node = project.layerTreeRoot().findLayer(old.id()) if old is not None else None
    if node is None or node.parent() is None:
        project.addMapLayer(new)
        return
    parent = node.parent()
    project.addMapLayer(new, False)
    added = parent.insertLayer(parent.children().index(node), new)
    added.setItemVisibilityChecked(node.itemVisibilityChecked())
    project.removeMapLayer(old.id())


def _remove_quietly(path: str) -> None:
    for p in (path, path + ".aux.xml", os.path.splitext(path)[0] + ".qml"):
        try:
            os.remove(p)
        except OSError:
            pass  # still open on a system that locks open files; the folder goes at close
