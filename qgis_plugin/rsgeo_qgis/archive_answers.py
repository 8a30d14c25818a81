"""The search panel over an archive: a folder of rsgeo results asked at once.

The worker ranks the tiles of every result for the query (``archive_query``,
streamed: only the best tiles are ever held) and writes them as one styled
layer with the scene of each tile; the panel shows that small layer and lists
its rows. No result's tiles are copied into QGIS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsFeatureRequest, QgsGeometry, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QTemporaryDir

from .layers import open_result_layer


@dataclass(frozen=True)
class ArchiveHit:
    """One listed tile of an archive answer."""

    rank: int
    scene: str
    tile_id: int
    similarity: float
    fid: int


class ArchiveAnswers:
    """The folder asked, the answer files the worker writes, and the answer layer on the map."""

    def __init__(self, folder: str) -> None:
        self.folder = str(Path(folder).resolve())
        self.layer: QgsVectorLayer | None = None
        self.hits: list[ArchiveHit] = []
        self._dir = QTemporaryDir()
        self._count = 0

    @property
    def name(self) -> str:
        return Path(self.folder).name or self.folder

    def next_output(self) -> str:
        """Where the worker writes the next answer (a new file each time: the shown one stays readable)."""
        self._count += 1
        return os.path.join(self._dir.path(), f"archive-answer-{self._count}.gpkg")

    def show(self, output: str, layer: str, label: str) -> QgsVectorLayer:
        """Replace the answer layer on the map with ``layer`` of ``output``; list its rows."""
        new = open_result_layer(output, layer, label)
        self.remove_layer()
        QgsProject.instance().addMapLayer(new)
        self.layer = new
        fields = new.fields().names()
        self.hits = []
        for f in new.getFeatures():
            self.hits.append(ArchiveHit(
                int(f["rank"]), str(f["scene"]) if "scene" in fields else "", int(f["tile_id"]),
                float(f["similarity"]), int(f.id())))
        self.hits.sort(key=lambda h: h.rank)
        return new

    def geometry(self, fid: int) -> tuple[QgsGeometry, object] | None:
        """The listed tile's polygon and the layer's CRS, or None once the layer is gone."""
        if self.layer is None:
            return None
        feature = next(self.layer.getFeatures(QgsFeatureRequest(fid)), None)
        return None if feature is None else (feature.geometry(), self.layer.crs())

    def forget_layer(self, layer_id: str) -> None:
        if self.layer is not None and self.layer.id() == layer_id:
            self.layer = None

    def remove_layer(self) -> None:
        if self.layer is not None:
            layer_id, self.layer = self.layer.id(), None
            if QgsProject.instance().mapLayer(layer_id) is not None:
                QgsProject.instance().removeMapLayer(layer_id)

    def close(self) -> None:
        self.remove_layer()
        self.hits = []
