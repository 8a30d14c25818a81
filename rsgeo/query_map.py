"""A query's answer as a map: the similarity of every tile as a COG, and the best tiles.

This is how the QGIS panel answers a result of any size (issue 13): instead of
sending every tile's score to QGIS (which copied every tile into an in-memory
layer on its main thread: ~12 s on open and ~6 s a query at 10^6 tiles), the
worker computes the similarities in one vectorised scan of the stored
embeddings (:meth:`rsgeo.results.EmbeddingIndex.similarity`), writes them as a
raster on the result's grid, and returns only the top tiles (ids, scores,
centres) and the value breaks to colour the raster with. QGIS then draws the
raster in its render threads, from overviews when zoomed out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsgeo.cells import axis_boundaries, nearest_chip_index
from rsgeo.cog import CogOptions, write_cog
from rsgeo.grid import ChipGrid, tile_rings
from rsgeo.rasters import CLASS_NODATA, check_class_count, paletted_qml, raster_cell_px, raster_grid, rasterise

#: Quantile classes of the colour ramp (the same count as the vector similarity style).
RAMP_CLASSES = 7
#: The breaks are quantiles of every n-th value: 62,500 of 10^6 place 8 breaks well (11 ms, not 110).
RAMP_SAMPLE_STEP = 16


@dataclass(frozen=True)
class QueryMap:
    """The answer :func:`similarity_map` wrote: where, the best tiles, and how to colour it.

    ``centres`` are the chips' centres in the grid's CRS, ``(k, 2)``; ``breaks``
    are ``RAMP_CLASSES + 1`` quantiles of the similarities (low to high);
    ``scored`` is how many tiles have a value; ``seconds`` the time per step.
    """

    path: Path
    tile_ids: np.ndarray
    similarity: np.ndarray
    centres: np.ndarray
    breaks: list[float]
    scored: int
    seconds: dict[str, float] = field(default_factory=dict)


def tile_centres(grid: ChipGrid, tile_ids: np.ndarray) -> np.ndarray:
    """Centres ``(N, 2)`` of the given chips in CRS units (the mean of their four corners)."""
    rings = tile_rings(grid, np.asarray(tile_ids, np.int64))
    centres: np.ndarray = rings[:, :4].mean(axis=1)
    return centres


def ramp_breaks(values: np.ndarray, classes: int = RAMP_CLASSES) -> list[float]:
    """``classes + 1`` quantiles of ``values``, strictly increasing (at least two); min and max exact."""
    sample = values[::RAMP_SAMPLE_STEP] if len(values) >= 64 * RAMP_SAMPLE_STEP else values
    finite = sample[np.isfinite(sample)]
    if not len(finite):
        return [0.0, 1.0]
    qs = np.quantile(finite, np.linspace(0.0, 1.0, classes + 1))
    out: list[float] = []
    for q in qs.tolist():
        if not out or q > out[-1]:
            out.append(float(q))
    out[0], out[-1] = min(out[0], float(np.nanmin(values))), max(out[-1], float(np.nanmax(values)))
    if len(out) < 2:
        out = [out[0] - 1e-6, out[0] + 1e-6]
    return out


def top_rows(similarity: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` highest similarities, best first (ties: lower row first)."""
    k = max(0, min(int(k), len(similarity)))
    if k == 0:
        return np.zeros(0, np.int64)
    cand = np.argpartition(-similarity, k - 1)[:k] if k < len(similarity) else np.arange(len(similarity))
    order = np.lexsort((cand, -similarity[cand]))
    rows: np.ndarray = cand[order].astype(np.int64)
    return rows


def similarity_map(
    grid: ChipGrid, tile_ids: np.ndarray, similarity: np.ndarray, path: str | os.PathLike[str], *, top_k: int,
    label: str = "",
    compress: str = "NONE",
) -> QueryMap:
    """Write the similarities of ``tile_ids`` as a COG at ``path`` and pick the ``top_k`` tiles.

    The raster is the one ``rsgeo query`` writes beside a result (:mod:`rsgeo.rasters`:
    the scene's grid coarsened to :func:`~rsgeo.rasters.raster_cell_px`, each cell
    the value of the chip whose centre is nearest); cells of chips with no
    embedding (nodata chips) are nodata. The default is
    an uncompressed COG: an answer in the panel's temporary folder is read once
    and replaced by the next; deflate made the 10^6-cell file 13 % smaller and
    its writing 2.6 x slower (0.71 s instead of 0.28 s here).
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = top_rows(similarity, top_k)
    breaks = ramp_breaks(similarity)
    seconds["rank"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cell = raster_cell_px(grid)
    _, _, transform, _, _ = raster_grid(grid, cell)
    data = rasterise(grid, cell, tile_ids, similarity.astype(np.float32, copy=False), np.nan)
    seconds["grid"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    written = write_cog(
        path, data, transform=transform, crs=grid.crs, nodata=float("nan"), descriptions=[label or "similarity"],
        tags={"rsgeo_cell_px": str(cell)}, options=CogOptions(resampling="average", compress=compress),
    )
    seconds["write"] = time.perf_counter() - t0
    ids = np.asarray(tile_ids, np.int64)[rows]
    return QueryMap(
        path=Path(written), tile_ids=ids, similarity=similarity[rows].astype(np.float32), centres=tile_centres(grid, ids),
        breaks=breaks, scored=int(len(similarity)), seconds=seconds,
    )



@dataclass(frozen=True)
class ClassMap:
    """The land-cover answer :func:`class_map` wrote: where, and how many tiles per class."""

    path: Path
    counts: list[int]
    scored: int
    seconds: dict[str, float] = field(default_factory=dict)


def class_map(
    grid: ChipGrid, tile_ids: np.ndarray, top: np.ndarray, classes: list[str], colours: list[tuple[int, int, int]],
    path: str | os.PathLike[str], *, compress: str = "NONE",
) -> ClassMap:
    """Write the top class of ``tile_ids`` as a paletted COG at ``path`` (the land-cover raster of
    ``rsgeo classify``: the same grid and cell rule, the classes' colours and names in the colour
    table and in a ``.qml`` sidecar); cells of chips with no embedding are nodata (255)."""
    check_class_count(len(classes))
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    cell = raster_cell_px(grid)
    _, _, transform, _, _ = raster_grid(grid, cell)
    data = rasterise(grid, cell, tile_ids, np.asarray(top).astype(np.uint8), CLASS_NODATA)
    seconds["grid"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    written = write_cog(
        path, data, transform=transform, crs=grid.crs, nodata=CLASS_NODATA,
        colormap={i: c for i, c in enumerate(colours)}, category_names=list(classes), descriptions=["top_class"],
        tags={"rsgeo_cell_px": str(cell)}, qml=paletted_qml(classes, colours),
        options=CogOptions(resampling="nearest", compress=compress),
    )
    seconds["write"] = time.perf_counter() - t0
    counts = np.bincount(np.asarray(top, np.int64), minlength=len(classes)).tolist()
    return ClassMap(path=Path(written), counts=[int(c) for c in counts], scored=int(len(top)), seconds=seconds)


def cell_tile(grid: ChipGrid, x: float, y: float) -> int | None:
    """The tile whose cell holds the point ``(x, y)`` (the grid's CRS), or ``None`` outside the scene.

    The cell is the part of the scene nearest the chip's centre (:mod:`rsgeo.cells`),
    the rule by which the answer rasters give a cell its value.
    """
    px, py = ~grid.transform * (x, y)
    if not (0.0 <= px < grid.width and 0.0 <= py < grid.height):
        return None
    col = int(nearest_chip_index(axis_boundaries(grid.width, grid.col_offsets, grid.spec.size_px), np.asarray([px]))[0])
    row = int(nearest_chip_index(axis_boundaries(grid.height, grid.row_offsets, grid.spec.size_px), np.asarray([py]))[0])
    return row * grid.n_cols + col
