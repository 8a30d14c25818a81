"""An analyst's labels: read from any vector file (any CRS) or by tile id, mapped to the result's chips.

A label file is anything GDAL reads as vectors (GeoPackage, Shapefile,
GeoJSON, ...), or a table without geometry that has a ``tile_id`` column
(a CSV, a GeoPackage attribute table, a labels layer saved by rsgeo). Each
feature gives its ``field`` value to the chips it covers:

* a point: every chip whose footprint holds it (one, or more with overlapping chips);
* a polygon (or line): every chip whose centre lies inside it, or, for a
  polygon smaller than a chip, the chip under its representative point.

Geometries are reprojected to the scene's CRS first (a file without a CRS is
taken to be in the scene's). Labels on no encoded chip (outside the scene, on
nodata) are dropped with one warning; none left is an error. A chip given two
different values is dropped too (one warning), since it cannot teach both.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.definitions import schema
from rsgeo.errors import OptionError, opt
from rsgeo.grid import ChipGrid, tile_rings

logger = logging.getLogger(__name__)

#: Values read as a positive label in a yes/no field (case-insensitive); see :data:`NO`.
YES = frozenset({"1", "true", "yes", "y", "t", "positive", "pos", "+"})
NO = frozenset({"0", "false", "no", "n", "f", "negative", "neg", "-"})


@dataclass(frozen=True)
class Labels:
    """Labelled chips: sorted unique tile ids and the label of each (text)."""

    tile_ids: np.ndarray
    values: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.tile_ids) != len(self.values):
            raise ValueError("one value per tile id")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def classes(self) -> list[str]:
        """The distinct values, sorted."""
        return sorted(set(self.values))

    def as_yes_no(self) -> np.ndarray:
        """The values as booleans (``yes``/``no``, ``1``/``0``, ``true``/``false``, ...)."""
        out = np.empty(len(self.values), bool)
        for i, v in enumerate(self.values):
            folded = v.strip().casefold()
            if folded in YES:
                out[i] = True
            elif folded in NO:
                out[i] = False
            else:
                raise OptionError(
                    f"label {v!r} of {self.source or 'the labels'} is neither yes nor no; a search's "
                    f"{opt('label_field')} holds 1/0, yes/no or true/false"
                )
        return out


def labels_from_tiles(tile_ids: Sequence[int], values: Sequence[str], stored: Sequence[int] | np.ndarray | None = None,
                      source: str = "") -> Labels:
    """Labels given directly by tile id (``stored``: the ids that have an embedding)."""
    return _collect(np.asarray(tile_ids, np.int64), [str(v) for v in values], stored, source, len(values))


def read_labels(path: str | os.PathLike[str], grid: ChipGrid, *, field: str, layer: str | None = None,
                stored: Sequence[int] | np.ndarray | None = None) -> Labels:
    """Labels of ``field`` in ``layer`` of the vector file ``path``, on the chips of ``grid``."""
    import pyogrio

    path = Path(path)
    name = path.name
    if not path.exists():
        raise OptionError(f"{opt('labels')} {path} does not exist; check the path")
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:  # noqa: BLE001 - GDAL's many error types: the message says it
        raise OptionError(f"{opt('labels')} {name} is not a vector file GDAL can read ({exc})") from None
    if layer is not None and layer not in layers:
        raise OptionError(f"{name} has no layer {layer!r} ({opt('label_layer')}); it has {', '.join(layers) or 'none'}")
    if layer is None:
        usable = [n for n in layers if n not in schema.RSGEO_TABLES and not n.startswith("gpkg_")]
        if len(usable) > 1:
            raise OptionError(f"{name} has several layers ({', '.join(usable)}); choose one with {opt('label_layer', 'NAME')}")
        layer = usable[0] if usable else None
    import geopandas as gpd

    frame = pyogrio.read_dataframe(path, layer=layer)
    source = f"{name}:{layer}" if layer else name
    geom_name = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    if field not in frame.columns or field == geom_name:
        fields = [str(c) for c in frame.columns if c != geom_name]
        raise OptionError(f"{source} has no field {field!r} ({opt('label_field')}); its fields are {', '.join(fields) or 'none'}")
    frame = frame[frame[field].notna().to_numpy() & (frame[field].astype(str).str.strip() != "").to_numpy()]
    values = [_text(v) for v in frame[field]]
    has_geometry = geom_name is not None and bool(frame.geometry.notna().any())
    if not has_geometry:
        if schema.COL_TILE_ID not in frame.columns:
            raise OptionError(f"{source} has no geometries and no {schema.COL_TILE_ID!r} column; give points, polygons or tile ids")
        ids = frame[schema.COL_TILE_ID].to_numpy(np.int64)
        return _collect(ids, values, stored, source, len(values))
    if frame.crs is None:
        logger.warning("%s has no CRS; its coordinates are taken to be in the scene's", source)
    elif grid.crs is not None:
        frame = frame.to_crs(grid.crs.to_wkt())
    footprint = _footprint(grid)
    hits = [_chips_under(grid, geom, footprint) for geom in frame.geometry]
    counts = [len(h[0]) for h in hits]
    ids = np.asarray([t for h in hits for t in h[0]], np.int64)
    weak = np.asarray([h[1] for h in hits for _ in h[0]], bool)
    per_chip = [v for v, c in zip(values, counts) for _ in range(c)]
    return _collect(ids, per_chip, stored, source, len(values), features_missed=sum(c == 0 for c in counts), weak=weak)


def _text(value: Any) -> str:
    """A label value as text (``2.0`` read from a float column is ``"2"``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _footprint(grid: ChipGrid) -> Any:
    """The raster's outline in its CRS (a parallelogram for a rotated grid)."""
    import shapely

    t = grid.transform
    corners = [(0, 0), (grid.width, 0), (grid.width, grid.height), (0, grid.height)]
    return shapely.Polygon([(t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f) for c, r in corners])


def _chips_under(grid: ChipGrid, geom: Any, footprint: Any) -> tuple[list[int], bool]:
    """The chips a feature labels, and whether weakly (a polygon smaller than a chip: the chip under it)."""
    import shapely

    from rsgeo.locate import tiles_at

    if geom is None or geom.is_empty or not np.isfinite(shapely.get_coordinates(geom)).all():
        return [], False  # empty, or beyond the scene CRS's area of use (reprojected to infinity)
    if not geom.intersects(footprint):
        return [], False
    hit = tiles_at(grid, geom)
    if geom.geom_type in ("Point", "MultiPoint") or not hit:
        return hit, False
    rings = tile_rings(grid, np.asarray(hit, np.int64))
    centres = shapely.points(rings[:, :4, :].mean(axis=1))
    inside = [t for t, ok in zip(hit, shapely.contains(geom, centres)) if ok]
    if inside:
        return inside, False
    return tiles_at(grid, geom.representative_point())[:1], True


def _collect(ids: np.ndarray, values: list[str], stored: Sequence[int] | np.ndarray | None, source: str, n_features: int,
             features_missed: int = 0, weak: np.ndarray | None = None) -> Labels:
    """One label per chip: a chip labelled weakly (by a small polygon) keeps a strong label it also has."""
    if weak is not None and weak.any():  # strong labels first, then weak ones on chips still free
        order = np.argsort(weak, kind="stable")
        strong_ids = set(ids[~weak].tolist())
        keep = [i for i in order.tolist() if not weak[i] or int(ids[i]) not in strong_ids]
        ids, values = ids[keep], [values[i] for i in keep]
    by_tile: dict[int, str] = {}
    conflicted: set[int] = set()
    on_chip = np.isin(ids, np.asarray(stored, np.int64)) if stored is not None else np.ones(len(ids), bool)
    off = int(np.sum(~on_chip))
    for t, v, ok in zip(ids.tolist(), values, on_chip.tolist()):
        if not ok:
            continue
        if t in by_tile and by_tile[t] != v:
            conflicted.add(t)
        by_tile.setdefault(t, v)
    for t in conflicted:
        del by_tile[t]
    if not by_tile:
        raise OptionError(
            f"none of the {n_features} labels in {source} lies on an encoded chip of the scene; check that they "
            "cover the scene (and that the file's CRS is set right)"
        )
    if features_missed or off:
        logger.warning("%s: %d of %d labels lie on no encoded chip (outside the scene or on nodata) and were left out",
                       source, features_missed + off, n_features)
    if conflicted:
        logger.warning("%s: %d chips were given two different labels and were left out", source, len(conflicted))
    tiles = sorted(by_tile)
    return Labels(np.asarray(tiles, np.int64), tuple(by_tile[t] for t in tiles), source)
