"""The map under assessment, as a categorical raster of assessment cells.

Tiles may overlap (a stride smaller than the chip, the shifted edge chips),
so a tile layer does not partition the ground. Each pixel of the scene's grid
is given to the *cell* of the chip whose centre is nearest (along each axis;
a tie goes to the chip that comes first): the cells partition the scene, and
class areas are pixel counts times the pixel area, with no double counting.
A tile skipped as nodata has no cell: its pixels are unmapped.

:class:`MapRaster` is the one form the rest of :mod:`rsgeo.assessment`
works on; a categorical GeoTIFF map is the same thing with one cell per
pixel (:func:`map_from_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from rsgeo.definitions import schema
from rsgeo.errors import OptionError, ResultError, opt
from rsgeo.grid import ChipGrid


@dataclass(frozen=True)
class MapRaster:
    """Class labels on a pixel grid, and the assessment cell of each pixel.

    ``labels`` index ``class_names`` (-1: unmapped); ``cells`` are the
    assessment unit of each pixel (a tile id; -1: none).
    """

    labels: np.ndarray
    cells: np.ndarray
    class_names: tuple[str, ...]
    transform: Affine
    crs: Any
    #: What the map is, for reports: ``result.gpkg:landcover``.
    source: str
    #: What a cell id is: a ``tile_id`` of the layer, or a ``raster_cell`` (row x width + column of a class raster).
    unit_key: str = "tile_id"

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.labels.shape
        return int(h), int(w)

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in CRS units squared (m² for a projected CRS in metres)."""
        t = self.transform
        return abs(t.a * t.e - t.b * t.d)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h, w = self.shape
        xs = [self.transform.c + self.transform.a * x + self.transform.b * y for x, y in ((0, 0), (w, 0), (0, h), (w, h))]
        ys = [self.transform.f + self.transform.d * x + self.transform.e * y for x, y in ((0, 0), (w, 0), (0, h), (w, h))]
        return (min(xs), min(ys), max(xs), max(ys))

    def class_pixels(self) -> np.ndarray:
        """Pixels mapped as each class."""
        lab = self.labels[self.labels >= 0]
        return np.bincount(lab, minlength=len(self.class_names)).astype(np.int64)

    def cell_centres(self, cell_ids: np.ndarray) -> np.ndarray:
        """``(N, 2)`` centres (CRS units) of the given cells: the mean of their pixels' centres."""
        ids = np.asarray(cell_ids, np.int64)
        h, w = self.shape
        flat = self.cells.ravel()
        keep = flat >= 0
        n_cells = int(flat.max()) + 1 if keep.any() else 1
        at = flat[keep]
        rows, cols = np.divmod(np.flatnonzero(keep), w)
        cnt = np.maximum(np.bincount(at, minlength=n_cells), 1)
        px = (np.bincount(at, weights=cols + 0.5, minlength=n_cells) / cnt)[ids]
        py = (np.bincount(at, weights=rows + 0.5, minlength=n_cells) / cnt)[ids]
        t = self.transform
        return np.stack([t.a * px + t.b * py + t.c, t.d * px + t.e * py + t.f], axis=1)

    def pixel_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, inside)`` of points in CRS units."""
        inv = ~self.transform
        col = np.floor(inv.a * x + inv.b * y + inv.c).astype(np.int64)
        row = np.floor(inv.d * x + inv.e * y + inv.f).astype(np.int64)
        h, w = self.shape
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        return np.where(inside, row, 0), np.where(inside, col, 0), inside


def nearest_centre_index(length: int, offsets: list[int], size: int) -> np.ndarray:
    """For each pixel along an axis, the index of the chip whose centre is nearest (ties: the first)."""
    size = min(size, length)
    centres = np.asarray(offsets, np.float64) + size / 2.0
    if len(centres) == 1:
        return np.zeros(length, np.int64)
    boundaries = (centres[:-1] + centres[1:]) / 2.0
    return np.searchsorted(boundaries, np.arange(length) + 0.5, side="left").astype(np.int64)


def grid_cells(grid: ChipGrid) -> np.ndarray:
    """The tile id of the cell each pixel of the grid's raster belongs to (``(height, width)`` int64)."""
    rows = nearest_centre_index(grid.height, grid.row_offsets, grid.spec.size_px)
    cols = nearest_centre_index(grid.width, grid.col_offsets, grid.spec.size_px)
    out: np.ndarray = rows[:, None] * grid.n_cols + cols[None, :]
    return out


def map_from_labels(labels: np.ndarray, class_names: tuple[str, ...], transform: Affine, crs: Any, source: str) -> MapRaster:
    """A categorical raster map: every pixel its own assessment cell."""
    h, w = labels.shape
    cells = np.where(labels >= 0, np.arange(h * w, dtype=np.int64).reshape(h, w), -1)
    return MapRaster(labels.astype(np.int32), cells, class_names, transform, crs, source)


def map_from_tile_layer(path: str | Path, layer: str) -> MapRaster:
    """The land-cover layer ``layer`` of a result GeoPackage, as cells on the scene's grid."""
    import pyogrio

    from rsgeo.gpkg import read_metadata
    from rsgeo.metadata import grid_from_metadata

    p = Path(path)
    meta = read_metadata(p)
    records = {r.name: r for r in schema.layer_records(meta)}
    rec = records.get(layer)
    class_rasters = _class_rasters(meta)
    if rec is None and layer in class_rasters:
        return map_from_class_raster(p, meta, class_rasters[layer])
    if rec is None:
        kinds = [r.name for r in records.values() if r.kind == schema.KIND_LANDCOVER] + sorted(class_rasters)
        raise ResultError(
            f"{p.name} has no layer {layer!r}; its land-cover layers and class rasters are {', '.join(kinds) or 'none'} "
            f"(make one with `rsgeo classify`, then pass {opt('layer')})"
        )
    if rec.kind != schema.KIND_LANDCOVER:
        raise OptionError(f"{p.name}:{layer} is a {rec.kind} layer, not land cover; pass a `rsgeo classify` layer with {opt('layer')}")
    grid = grid_from_metadata(meta)
    if grid.crs is None:
        raise ResultError(f"{p.name} has no CRS; its scene was not georeferenced, so it cannot be compared with reference data")
    frame = pyogrio.read_dataframe(p, layer=layer, columns=[schema.COL_TILE_ID, schema.COL_TOP_CLASS], read_geometry=False)
    names = tuple(rec.texts) or tuple(sorted({str(v) for v in frame[schema.COL_TOP_CLASS]}))
    index = {n: i for i, n in enumerate(names)}
    tile_class = np.full(len(grid), -1, np.int32)
    ids = frame[schema.COL_TILE_ID].to_numpy(np.int64)
    tile_class[ids] = [index.get(str(v), -1) for v in frame[schema.COL_TOP_CLASS]]
    cells = grid_cells(grid)
    labels = tile_class[cells]
    cells = np.where(labels >= 0, cells, -1)
    return MapRaster(labels, cells, names, grid.transform, grid.crs, f"{p.name}:{layer}")


def _class_rasters(meta: dict[str, Any]) -> dict[str, schema.RasterRecord]:
    """The result's top-class rasters (tile and dense maps), by name."""
    raw = meta.get(schema.KEY_RASTERS) or {}
    if not isinstance(raw, dict):
        return {}
    records = (schema.RasterRecord.from_dict(str(k), v) for k, v in raw.items() if isinstance(v, dict))
    return {r.name: r for r in records if r.kind == schema.RASTER_TOP_CLASS}


def _cell_index(length: int, pixel_origin: float, pixel_size: float, cell_origin: float, cell_size: float, n: int) -> np.ndarray:
    """For each scene pixel along an axis, the raster cell holding its centre (-1: outside the raster)."""
    centres = pixel_origin + (np.arange(length) + 0.5) * pixel_size
    index = np.floor((centres - cell_origin) / cell_size).astype(np.int64)
    return np.where((index >= 0) & (index < n), index, -1)


def map_from_class_raster(path: Path, meta: dict[str, Any], record: schema.RasterRecord) -> MapRaster:
    """A result's top-class raster (``landcover_class``, a dense ``…_dense_class``) as a map.

    Each raster cell is one assessment unit; the map is laid on the scene's pixel
    grid (every scene pixel takes the class of the raster cell holding its
    centre), so that a reference is read at the scene's resolution and a cell's
    purity is measured from all the reference pixels under it.
    """
    import rasterio

    from rsgeo.metadata import grid_from_metadata

    layers = {r.name: r for r in schema.layer_records(meta)}
    layer = layers.get(record.layer)
    if layer is None or layer.kind != schema.KIND_LANDCOVER or not layer.texts:
        raise ResultError(f"{path.name}:{record.name} maps no land-cover layer of the result; pass a land-cover layer with {opt('layer')}")
    grid = grid_from_metadata(meta)
    if grid.crs is None:
        raise ResultError(f"{path.name} has no CRS; its scene was not georeferenced, so it cannot be compared with reference data")
    raster_path = path.parent / record.path
    try:
        with rasterio.open(raster_path) as ds:
            values = ds.read(1)
            t = ds.transform
    except rasterio.errors.RasterioIOError as exc:
        raise ResultError(
            f"the raster {raster_path.name} that {path.name} lists is missing or unreadable ({exc}); "
            f"re-run `rsgeo classify {path.name}` to rewrite it, or assess the vector layer"
        ) from None
    g = grid.transform
    if t.b or t.d or g.b or g.d:
        raise ResultError(f"{raster_path.name} is a rotated raster; assess the vector layer {record.layer!r} instead")
    rows = _cell_index(grid.height, g.f, g.e, t.f, t.e, values.shape[0])
    cols = _cell_index(grid.width, g.c, g.a, t.c, t.a, values.shape[1])
    inside = (rows[:, None] >= 0) & (cols[None, :] >= 0)
    cells = np.where(inside, rows[:, None] * values.shape[1] + cols[None, :], -1)
    labels = np.where(inside, values[np.maximum(rows, 0)[:, None], np.maximum(cols, 0)[None, :]].astype(np.int32), -1)
    n = len(layer.texts)
    mapped = (labels >= 0) & (labels < n)  # the raster's nodata (255) is unmapped
    labels = np.where(mapped, labels, -1)
    cells = np.where(mapped, cells, -1)
    return MapRaster(labels, cells, tuple(layer.texts), grid.transform, grid.crs, f"{path.name}:{record.name}", "raster_cell")
