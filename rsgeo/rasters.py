"""Rasters of the answers: Cloud-Optimised GeoTIFFs beside the result GeoPackage.

A land-cover layer ``L`` gets ``OUT_L_class.tif`` (the top class, a paletted
``uint8`` band coloured and named as the layer is styled) and ``OUT_L_scores.tif``
(one ``float32`` band per class score); a query layer ``Q`` gets
``OUT_Q_similarity.tif`` (one ``float32`` band: the similarity of every scored
tile, whatever the layer's ``--top-k``/``--threshold``). Each is recorded under
the result's metadata key ``rasters`` (:class:`~rsgeo.definitions.schema.RasterRecord`).

The raster grid is the scene's pixel grid (as read: after ``--gsd``) coarsened
by ``cell_px`` pixels along both axes (:func:`raster_cell_px`), under the
scene's transform (rotated ones too) and CRS. **Rule**: each raster cell takes
the value of the chip whose centre is nearest the cell's centre, measured in
scene pixels (ties: the later chip, right/down) — that is, the chip whose
*cell* (:mod:`rsgeo.cells`) holds the raster cell's centre; the nearest chip
always covers that point. A cell whose chip was not scored (skipped as
nodata) is nodata (255 for classes, NaN for scores). So the raster partitions
the ground as the ``cells`` layer does: nothing counted twice (docs/maps.md).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import LayerPlan, TileValues
from rsgeo.cells import axis_boundaries, nearest_chip_index
from rsgeo.cog import CogOptions, remove_raster, write_cog
from rsgeo.definitions import schema
from rsgeo.definitions.colours import LAYER_OPACITY  # as the vector layers' styles: the scene shows through
from rsgeo.definitions.schema import RasterRecord
from rsgeo.errors import OptionError, opt
from rsgeo.grid import ChipGrid

logger = logging.getLogger(__name__)

__all__ = [
    "CLASS_NODATA", "MAX_CLASSES", "check_class_count", "raster_cell_px", "raster_grid", "rasterise",
    "recorded_rasters", "remove_stale", "write_plan_rasters", "write_similarity_raster",
]

#: Nodata of the top-class band; classes are 0 .. MAX_CLASSES - 1.
CLASS_NODATA = 255
MAX_CLASSES = 255
#: Smallest raster cell, as a fraction of the stride, before the stride itself is used.
_MIN_CELL_FRACTION = 4


def check_class_count(n_classes: int) -> None:
    """Refuse, before any work, more classes than the paletted top-class band holds."""
    if n_classes > MAX_CLASSES:
        raise OptionError(
            f"{n_classes} classes are more than the top-class raster's palette holds ({MAX_CLASSES}); "
            f"give at most {MAX_CLASSES} classes, or pass {opt('no_rasters')}"
        )


def raster_cell_px(grid: ChipGrid) -> int:
    """The raster cell in scene pixels: the largest length dividing the stride and the half-chip-plus-half-stride.

    With it every boundary between two regular chips' cells (at ``i * stride +
    (size + stride) / 2``) falls on a raster cell edge, so the raster draws the
    cells exactly (without overlap, one raster cell per chip: ``cell = stride``);
    only next to the shifted last chip of a row or column may a raster cell
    straddle a boundary (then its centre decides). A length under a quarter of
    the stride (odd strides) is not used: then the cell is the stride.
    """
    size = grid.spec.size_px
    stride = grid.spec.stride_px
    twice = size + stride
    cell = math.gcd(stride, twice // 2) if twice % 2 == 0 else 1
    return cell if cell * _MIN_CELL_FRACTION >= stride else stride


def raster_grid(grid: ChipGrid, cell_px: int) -> tuple[int, int, Any, np.ndarray, np.ndarray]:
    """``(width, height, transform, chip row per raster row, chip col per raster col)``.

    The raster covers the scene: ``ceil(width / cell_px)`` columns (the last
    may reach past the scene's edge, as a coarser grid must).
    """
    from affine import Affine

    width = max(1, math.ceil(grid.width / cell_px))
    height = max(1, math.ceil(grid.height / cell_px))
    transform = grid.transform * Affine.scale(cell_px, cell_px)
    centres_x = (np.arange(width, dtype=np.float64) + 0.5) * cell_px
    centres_y = (np.arange(height, dtype=np.float64) + 0.5) * cell_px
    cols = nearest_chip_index(axis_boundaries(grid.width, grid.col_offsets, grid.spec.size_px), centres_x)
    rows = nearest_chip_index(axis_boundaries(grid.height, grid.row_offsets, grid.spec.size_px), centres_y)
    return width, height, transform, rows, cols


def rasterise(grid: ChipGrid, cell_px: int, tile_ids: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
    """``(bands, height, width)`` raster of per-tile ``values`` ``(N, bands)`` by the module's rule."""
    _, _, _, rows, cols = raster_grid(grid, cell_px)
    values = values.reshape(len(tile_ids), -1)
    out = np.empty((values.shape[1], len(rows), len(cols)), values.dtype)
    full = np.empty(len(grid), values.dtype)
    ids = np.asarray(tile_ids, np.int64)
    for band in range(values.shape[1]):
        full.fill(fill)
        full[ids] = values[:, band]
        out[band] = full.reshape(grid.n_rows, grid.n_cols)[np.ix_(rows, cols)]
    return out


def _collect(values: TileValues) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    ids, vals, tops = [], [], []
    for chunk_ids, chunk_values, chunk_top in values.chunks():
        ids.append(chunk_ids)
        vals.append(chunk_values)
        if chunk_top is not None:
            tops.append(chunk_top)
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, len(values.bands)), np.float32), None
    top = np.concatenate(tops) if tops else None
    return np.concatenate(ids), np.concatenate(vals), top


def _relative(output: Path, raster: Path) -> str:
    return os.path.relpath(raster, output.parent).replace(os.sep, "/")


def _rgb(colour: str) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in colour.split(",")[:3])
    return r, g, b


def write_plan_rasters(output: Path, plan: LayerPlan, grid: ChipGrid, *, cell_px: int | None = None) -> list[RasterRecord]:
    """Write the rasters of one layer plan beside ``output`` (the GeoPackage's final path)."""
    if plan.values is None:
        return []
    cell = cell_px or raster_cell_px(grid)
    values = plan.values
    ids, vals, top = _collect(values)
    _, _, transform, _, _ = raster_grid(grid, cell)
    records: list[RasterRecord] = []
    tags = {"rsgeo_layer": plan.name, "rsgeo_cell_px": str(cell)}

    def name_of(kind: str) -> str:
        return plan.name + schema.RASTER_NAME_SUFFIXES[kind]

    def path_of(kind: str) -> Path:
        return output.with_name(schema.raster_file_name(output, name_of(kind)))

    if values.classes:
        check_class_count(len(values.classes))
        top_values = (top if top is not None else vals.argmax(axis=1)).astype(np.uint8)
        classes = rasterise(grid, cell, ids, top_values, CLASS_NODATA)
        path = path_of(schema.RASTER_TOP_CLASS)
        colours = [_rgb(c) for c in values.colours]
        write_cog(
            path, classes, transform=transform, crs=grid.crs, nodata=CLASS_NODATA,
            colormap={i: c for i, c in enumerate(colours)}, category_names=list(values.classes),
            descriptions=[schema.RASTER_TOP_CLASS], tags=tags, qml=paletted_qml(values.classes, colours),
            options=CogOptions(resampling="nearest"),
        )
        records.append(RasterRecord(
            name=name_of(schema.RASTER_TOP_CLASS), path=_relative(output, path), layer=plan.name, kind=schema.RASTER_TOP_CLASS,
            bands=(schema.RASTER_TOP_CLASS,), dtype="uint8", cell_px=cell, nodata=CLASS_NODATA,
        ))
        kind = schema.RASTER_SCORES
    else:
        kind = schema.RASTER_SIMILARITY
    data = rasterise(grid, cell, ids, vals.astype(np.float32, copy=False), np.nan)
    path = path_of(kind)
    finite = vals[np.isfinite(vals)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if kind == schema.RASTER_SCORES:
        low, high = 0.0, 1.0  # softmax scores
    write_cog(
        path, data, transform=transform, crs=grid.crs, nodata=float("nan"), descriptions=list(values.bands),
        tags=tags, qml=ramp_qml(low, high), options=CogOptions(resampling="average"),
    )
    records.append(RasterRecord(
        name=name_of(kind), path=_relative(output, path), layer=plan.name, kind=kind, bands=values.bands,
        dtype="float32", cell_px=cell, nodata=float("nan"),
    ))
    return records


def write_similarity_raster(
    path: Path, grid: ChipGrid, tile_ids: np.ndarray, similarity: np.ndarray, label: str, *,
    cell_px: int | None = None,
) -> Path:
    """A one-band similarity COG from arrays (no per-tile objects): :meth:`rsgeo.results.Result.similarity_raster`."""
    cell = cell_px or raster_cell_px(grid)
    _, _, transform, _, _ = raster_grid(grid, cell)
    data = rasterise(grid, cell, tile_ids, np.asarray(similarity, np.float32), np.nan)
    finite = similarity[np.isfinite(similarity)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return write_cog(
        path, data, transform=transform, crs=grid.crs, nodata=float("nan"), descriptions=[label],
        tags={"rsgeo_cell_px": str(cell)}, qml=ramp_qml(low, high), options=CogOptions(resampling="average"),
    )


def recorded_rasters(metadata: Mapping[str, Any]) -> dict[str, RasterRecord]:
    """The rasters a result's metadata lists, by name."""
    raw = metadata.get(schema.KEY_RASTERS) or {}
    return {str(k): RasterRecord.from_dict(str(k), v) for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def remove_stale(output: Path, previous: Mapping[str, RasterRecord], kept: Mapping[str, RasterRecord]) -> None:
    """Remove the files of ``previous`` rasters (relative to ``output``) that ``kept`` no longer lists."""
    keep = {(output.parent / r.path).resolve() for r in kept.values()}
    for record in previous.values():
        path = output.parent / record.path
        if path.resolve() not in keep and path.suffix == schema.RASTER_SUFFIX:
            logger.info("removing %s, a raster of the earlier result", path)
            remove_raster(path)


def update_rasters(
    output: Path, plans: Sequence[LayerPlan], grid: ChipGrid, *, previous: Mapping[str, RasterRecord], write: bool,
) -> dict[str, RasterRecord]:
    """Write the plans' rasters (when ``write``) and return the result's rasters afterwards.

    ``previous`` are the rasters the result listed before; those of layers the
    plans rewrite are dropped (a layer rewritten with ``--no-rasters`` keeps no
    stale raster), the others kept. Remove the dropped files with
    :func:`remove_stale` once the GeoPackage is in place.
    """
    rewritten = {p.name for p in plans}
    out = {name: r for name, r in previous.items() if r.layer not in rewritten}
    if write:
        for plan in plans:
            for record in write_plan_rasters(output, plan, grid):
                out[record.name] = record
    return out


def paletted_qml(classes: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> str:
    """QGIS style of the top-class band: a paletted renderer with the class names as labels."""
    from xml.sax.saxutils import quoteattr

    entries = "".join(
        f'<paletteEntry value="{i}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" label={quoteattr(name)}/>'
        for i, (name, (r, g, b)) in enumerate(zip(classes, colours))
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22.0" styleCategories="AllStyleCategories"><pipe>'
        f'<rasterrenderer type="paletted" band="1" opacity="{LAYER_OPACITY}" alphaBand="-1" nodataColor="">'
        f"<rasterTransparency/><colorPalette>{entries}</colorPalette></rasterrenderer>"
        '<brightnesscontrast brightness="0" contrast="0"/><huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>'
        "<rasterresampler maxOversampling=\"2\"/></pipe><blendMode>0</blendMode></qgis>"
    )


#: Viridis at five stops (as the vector similarity layers), low → high.
_RAMP = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")


def ramp_qml(low: float, high: float, *, band: int = 1) -> str:
    """QGIS style of a score or similarity band: a viridis ramp from ``low`` to ``high``."""
    if not high > low:
        high = low + 1e-6
    items = "".join(
        f'<item value="{low + (high - low) * i / (len(_RAMP) - 1):.6f}" color="{c}" alpha="255" '
        f'label="{low + (high - low) * i / (len(_RAMP) - 1):.3f}"/>'
        for i, c in enumerate(_RAMP)
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22.0" styleCategories="AllStyleCategories"><pipe>'
        f'<rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="{LAYER_OPACITY}" alphaBand="-1" '
        f'classificationMin="{low:.6f}" classificationMax="{high:.6f}" nodataColor="">'
        "<rasterTransparency/><rastershader>"
        f'<colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
        f'minimumValue="{low:.6f}" maximumValue="{high:.6f}">{items}</colorrampshader>'
        "</rastershader></rasterrenderer>"
        "<rasterresampler maxOversampling=\"2\"/></pipe><blendMode>0</blendMode></qgis>"
    )


def previous_rasters(output: Path) -> dict[str, RasterRecord]:
    """The rasters an existing result at ``output`` lists (none when there is no rsgeo result there)."""
    from rsgeo.errors import ResultError
    from rsgeo.gpkg import is_geopackage, read_metadata

    if not is_geopackage(output):
        return {}
    try:
        return recorded_rasters(read_metadata(output))
    except ResultError:
        return {}


def as_metadata(rasters: Mapping[str, RasterRecord]) -> dict[str, Any]:
    """The value of the metadata key ``rasters``."""
    return {name: r.to_dict() for name, r in rasters.items()}


def check_questions(questions: Sequence[Any] | None, *, no_rasters: bool) -> None:
    """Refuse up front what the rasters cannot hold (more classes than the palette)."""
    from rsgeo.questions import LandcoverQuestion

    if no_rasters:
        return
    for question in questions or ():
        if isinstance(question, LandcoverQuestion):
            check_class_count(len(question.choice.names))
