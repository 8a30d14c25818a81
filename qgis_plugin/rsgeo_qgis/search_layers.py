"""In-memory layers the search panel updates: similarity and land cover per tile.

The tile geometry is read once from the result's ``tiles`` layer; each answer
from the worker only changes attribute values, so the layer updates in place
(same layer, same position in the layer tree) within a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFeature,
    QgsField,
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsRendererCategory,
    QgsRendererRange,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .compat import field_type
from .definitions.colours import class_colours
from .resultfile import TILES_LAYER, layer_uri

SIMILARITY_CLASSES = 7


class TileLayer:
    """A memory copy of the ``tiles`` layer with extra attribute columns."""

    def __init__(self, gpkg: str | Path, name: str, fields: Sequence[tuple[str, str]]) -> None:
        source = QgsVectorLayer(layer_uri(gpkg, TILES_LAYER), "tiles", "ogr")
        if not source.isValid():
            raise ValueError(f"{gpkg} has no readable '{TILES_LAYER}' layer")
        crs = source.crs().authid() or source.crs().toWkt()
        layer = QgsVectorLayer(f"Polygon?crs={crs}", name, "memory")
        if not layer.crs().isValid() or layer.crs() != source.crs():
            layer.setCrs(source.crs())
        provider = layer.dataProvider()
        provider.addAttributes([QgsField("tile_id", field_type("LongLong"))] + [QgsField(n, field_type(t)) for n, t in fields])
        layer.updateFields()
        self.columns = [n for n, _ in fields]
        feats = []
        for f in source.getFeatures():
            out = QgsFeature(layer.fields())
            out.setGeometry(f.geometry())
            out.setAttributes([int(f["tile_id"])] + [None] * len(fields))
            feats.append(out)
        provider.addFeatures(feats)
        layer.updateExtents()
        self.layer = layer
        self.fid_of: dict[int, int] = {int(f["tile_id"]): f.id() for f in layer.getFeatures()}

    def set_values(self, tile_ids: Sequence[int], columns: dict[str, Sequence[object]]) -> None:
        """Set the given columns for the given tiles; tiles not listed get NULL."""
        idx = {name: self.layer.fields().indexOf(name) for name in columns}
        given = {}
        for i, tid in enumerate(tile_ids):
            fid = self.fid_of.get(int(tid))
            if fid is not None:
                given[fid] = {idx[name]: values[i] for name, values in columns.items()}
        nulls = {i: None for i in idx.values()}
        changes = {fid: given.get(fid, nulls) for fid in self.fid_of.values()}
        self.layer.dataProvider().changeAttributeValues(changes)
        self.layer.triggerRepaint()


def _fill(color: QColor, *, outline: bool = False) -> QgsFillSymbol:
    symbol = QgsFillSymbol.createSimple({
        "color": color.name(), "outline_color": "35,35,35,90" if outline else "0,0,0,0",
        "outline_width": "0.1", "outline_style": "solid" if outline else "no",
    })
    return symbol


def quantile_breaks(values: Sequence[float], classes: int) -> list[float]:
    """Class limits at quantiles of ``values`` (deduplicated, at least two)."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return [0.0, 1.0]
    breaks = [data[min(len(data) - 1, round(i * (len(data) - 1) / classes))] for i in range(classes + 1)]
    out: list[float] = []
    for b in breaks:
        if not out or b > out[-1]:
            out.append(float(b))
    if len(out) < 2:
        out = [out[0] - 1e-6, out[0] + 1e-6]
    return out


def similarity_renderer(values: Sequence[float], *, classes: int = SIMILARITY_CLASSES) -> QgsGraduatedSymbolRenderer:
    """Graduated colours on ``similarity`` (viridis, quantile classes: low dark, high yellow)."""
    breaks = quantile_breaks(values, classes)
    ramp = QgsStyle.defaultStyle().colorRamp("Viridis")
    n = len(breaks) - 1
    ranges = []
    for i in range(n):
        color = ramp.color(i / max(n - 1, 1)) if ramp is not None else QColor.fromHsvF(0.7 - 0.55 * i / max(n - 1, 1), 0.8, 0.9)
        ranges.append(QgsRendererRange(breaks[i], breaks[i + 1], _fill(color), f"{breaks[i]:.3f} – {breaks[i + 1]:.3f}"))
    renderer = QgsGraduatedSymbolRenderer("similarity", ranges)
    return renderer


def landcover_renderer(classes: Sequence[str], colours: Sequence[str] | None = None) -> QgsCategorizedSymbolRenderer:
    """Categories on ``top_class`` in the stored style's colours (``colours`` as "r,g,b", from rsgeo,
    else the shared definitions' conventional colours and palette)."""
    rgb = list(colours) if colours and len(colours) == len(classes) else class_colours(classes)
    cats = []
    for name, colour in zip(classes, rgb):
        r, g, b = (int(v) for v in colour.split(","))
        cats.append(QgsRendererCategory(name, _fill(QColor(r, g, b), outline=True), name))
    return QgsCategorizedSymbolRenderer("top_class", cats)
