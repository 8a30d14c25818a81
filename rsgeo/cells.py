"""Every chip's *cell*: the part of the scene nearer its centre than any other chip's.

Chips overlap (``--overlap``, and the shifted edge chips), so their squares
count some ground twice. Their cells do not: the chip centres form a product
grid (every row of chips has the same column offsets), so the set of points
nearest one centre is a rectangle in scene pixels, bounded halfway between
neighbouring centres and by the scene's edges. The cells of all chips of the
grid partition the scene; each lies inside its chip (neighbouring centres are
at most a stride, and so at most a chip, apart). Pure functions of the grid,
plus the ``cells`` layer plan (docs/maps.md).

A point exactly halfway between two centres belongs to the later chip (further
right, further down): cells are half-open ``[lo, hi)`` intervals of pixels,
the same rule by which :mod:`rsgeo.rasters` gives a raster cell its chip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from rsgeo.answers import WRITE_CHUNK, LayerPlan
from rsgeo.definitions import schema
from rsgeo.grid import ChipGrid
from rsgeo.store import EmbeddingSource

__all__ = ["axis_boundaries", "axis_cells", "cell_rings", "cells_plan", "nearest_chip_index"]


def _centres(length: int, offsets: list[int], size: int) -> np.ndarray:
    return np.asarray(offsets, np.float64) + min(size, length) / 2.0


def axis_boundaries(length: int, offsets: list[int], size: int) -> np.ndarray:
    """Pixel positions halfway between consecutive chip centres along one axis."""
    c = _centres(length, offsets, size)
    mids: np.ndarray = (c[1:] + c[:-1]) / 2.0
    return mids


def axis_cells(length: int, offsets: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` pixel bounds of each chip's cell along one axis (they tile ``[0, length]``)."""
    mids = axis_boundaries(length, offsets, size)
    return np.concatenate([[0.0], mids]), np.concatenate([mids, [float(length)]])


def nearest_chip_index(boundaries: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Index of the chip whose centre is nearest each pixel position (ties: the later chip)."""
    index: np.ndarray = np.searchsorted(boundaries, positions, side="right")
    return index


def cell_rings(grid: ChipGrid, tile_ids: np.ndarray) -> np.ndarray:
    """Closed rings ``(N, 5, 2)`` of the cells of the given chips, in CRS units."""
    ids = np.asarray(tile_ids, np.int64)
    rows, cols = np.divmod(ids, grid.n_cols)
    x_lo, x_hi = axis_cells(grid.width, grid.col_offsets, grid.spec.size_px)
    y_lo, y_hi = axis_cells(grid.height, grid.row_offsets, grid.spec.size_px)
    x0, x1, y0, y1 = x_lo[cols], x_hi[cols], y_lo[rows], y_hi[rows]
    px = np.stack([x0, x1, x1, x0, x0], axis=1)
    py = np.stack([y0, y0, y1, y1, y0], axis=1)
    t = grid.transform
    return np.stack([px * t.a + py * t.b + t.c, px * t.d + py * t.e + t.f], axis=2)


def _frame(grid: ChipGrid, ids: np.ndarray, fractions: np.ndarray) -> Any:
    import geopandas as gpd
    import shapely

    rows, cols = np.divmod(ids, grid.n_cols)
    return gpd.GeoDataFrame(
        {schema.COL_TILE_ID: ids, schema.COL_ROW: rows, schema.COL_COL: cols, schema.COL_VALID_FRACTION: fractions},
        geometry=shapely.polygons(cell_rings(grid, ids)), crs=grid.crs,
    )


def cells_plan(grid: ChipGrid, source: EmbeddingSource) -> LayerPlan:
    """The ``cells`` layer: one cell per encoded tile, with the ``tiles`` layer's ids and columns."""

    def frames() -> Iterator[Any]:
        for ids, fractions, _ in source.iter_chunks(WRITE_CHUNK):
            yield _frame(grid, ids, fractions)

    def empty() -> Any:
        return _frame(grid, np.zeros(0, np.int64), np.zeros(0, np.float32))

    from rsgeo.styles import outline_qml

    def style() -> str:
        return outline_qml(colour="255,255,0")

    return LayerPlan(schema.CELLS_LAYER, schema.KIND_CELLS, frames, empty, style, {"kind": schema.KIND_CELLS})
