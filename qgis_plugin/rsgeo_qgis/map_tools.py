"""Map tool for picking example tiles: left click "more like this", right click "less like this"."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt, pyqtSignal


def tile_at(layer: QgsVectorLayer, point: QgsPointXY) -> int | None:
    """``tile_id`` of the tile of ``layer`` containing ``point`` (in the layer's CRS)."""
    request = QgsFeatureRequest().setFilterRect(QgsRectangle(point, point))
    geom = QgsGeometry.fromPointXY(point)
    for f in layer.getFeatures(request):
        if f.geometry().contains(geom):
            return int(f["tile_id"])
    return None


class TilePickTool(QgsMapToolEmitPoint):
    """Emits ``picked(tile_id, positive)`` for the tile under a click."""

    picked = pyqtSignal(int, bool)

    def __init__(self, canvas: QgsMapCanvas, layer: QgsVectorLayer) -> None:
        super().__init__(canvas)
        self.layer = layer

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:  # noqa: N802 - Qt API
        point = self.pick_point(event.mapPoint())
        if point is None:
            return
        tile = tile_at(self.layer, point)
        if tile is not None:
            self.picked.emit(tile, event.button() != Qt.MouseButton.RightButton)

    def pick_point(self, map_point: QgsPointXY) -> QgsPointXY | None:
        """A canvas point in the layer's CRS."""
        return to_crs(self.canvas(), map_point, self.layer.crs())


class PointPickTool(QgsMapToolEmitPoint):
    """Emits ``clicked(x, y, positive)`` in ``crs`` (a result's) for a click; for results shown as rasters."""

    clicked = pyqtSignal(float, float, bool)

    def __init__(self, canvas: QgsMapCanvas, crs: QgsCoordinateReferenceSystem) -> None:
        super().__init__(canvas)
        self.crs = crs

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:  # noqa: N802 - Qt API
        point = to_crs(self.canvas(), event.mapPoint(), self.crs)
        self.clicked.emit(point.x(), point.y(), event.button() != Qt.MouseButton.RightButton)


def to_crs(canvas: QgsMapCanvas, map_point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> QgsPointXY:
    """A canvas point in ``crs``."""
    canvas_crs = canvas.mapSettings().destinationCrs()
    if not canvas_crs.isValid() or not crs.isValid() or canvas_crs == crs:
        return QgsPointXY(map_point)
    transform = QgsCoordinateTransform(canvas_crs, crs, QgsProject.instance())
    return transform.transform(QgsPointXY(map_point))
