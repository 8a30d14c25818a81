"""Writing dense maps (``--dense``): patch answers blended over the scene, as COGs beside a result.

For each layer that asks a dense question (:class:`~rsgeo.answers.DenseAsk`)
the chips' patch embeddings are answered per patch
(:func:`~rsgeo.answers.dense_values`: the layer's own class embeddings or
query vector), blended onto the dense grid (:mod:`rsgeo.dense_maps`) and
written with :func:`rsgeo.cog.write_cog`:

* land cover: ``OUT_<layer>_dense_class.tif`` — the top class of the blended
  scores, ``uint8`` with the layer's colours as colour table and the class
  names as category names (nodata 255) — and ``OUT_<layer>_dense_scores.tif``,
  one ``float32`` band per class (nodata ``nan``);
* a query: ``OUT_<layer>_dense.tif``, the blended cosine similarity.

Every raster is recorded under the metadata's ``rasters`` key
(:class:`~rsgeo.definitions.schema.RasterRecord`, plus ``dense`` — the
method — and ``cell_size_px``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import DenseAsk, LayerPlan, dense_values
from rsgeo.cog import CogOptions, write_cog
from rsgeo.definitions import schema
from rsgeo.dense_maps import Blender, DenseGrid, SeenBox, dense_grid, seen_box
from rsgeo.grid import ChipGrid
from rsgeo.patches import PatchSource
from rsgeo.rasters import paletted_qml, ramp_qml

logger = logging.getLogger(__name__)

#: The class raster's nodata value (``uint8``: at most 255 classes).
CLASS_NODATA = 255


def write_dense_rasters(
    output: Path,
    plans: Sequence[LayerPlan],
    grid: ChipGrid,
    patches: PatchSource,
    *,
    resize_mode: str,
    method: str,
) -> dict[str, dict[str, Any]]:
    """Write the dense rasters of ``plans`` beside ``output``; returns their ``rasters`` records."""
    box = seen_box(grid, resize_mode)
    cells = dense_grid(grid, patches.grid_size, box)
    records: dict[str, dict[str, Any]] = {}
    for plan in plans:
        if plan.dense is None:
            continue
        values = blended(plan.dense, grid, cells, box, patches)
        if plan.dense.kind == schema.KIND_LANDCOVER:
            records.update(_landcover_rasters(output, plan.name, plan.dense, values, grid, cells, method))
        else:
            records.update(_query_raster(output, plan.name, plan.dense, values, grid, cells, method))
    return records


def blended(ask: DenseAsk, grid: ChipGrid, cells: DenseGrid, box: SeenBox, patches: PatchSource) -> np.ndarray:
    """The ``(bands, rows, cols)`` blended answers of every stored chip's patches."""
    blender = Blender(grid, cells, box, len(ask.bands))
    for ids, chunk in patches.iter_chunks():
        blender.add(ids, dense_values(ask, chunk))
    return blender.result()


def top_class(scores: np.ndarray) -> np.ndarray:
    """The index of the best class per cell (``uint8``), :data:`CLASS_NODATA` where no chip covers it."""
    covered = ~np.isnan(scores[0])
    out = np.full(scores.shape[1:], CLASS_NODATA, np.uint8)
    out[covered] = scores[:, covered].argmax(axis=0).astype(np.uint8)
    return out


def _record(
    output: Path, name: str, layer: str, kind: str, bands: Sequence[str], dtype: str, nodata: float,
    cells: DenseGrid, method: str,
) -> dict[str, Any]:
    rec = schema.RasterRecord(
        name=name, path=schema.raster_file_name(output, name), layer=layer, kind=kind, bands=tuple(bands),
        dtype=dtype, cell_px=int(round(cells.cell_w)), nodata=nodata,
    ).to_dict()
    rec.update({"dense": method, "cell_size_px": [cells.cell_w, cells.cell_h], "blend": "tent from the chip centre"})
    return rec


def _landcover_rasters(
    output: Path, layer: str, ask: DenseAsk, scores: np.ndarray, grid: ChipGrid, cells: DenseGrid, method: str
) -> dict[str, dict[str, Any]]:
    if len(ask.bands) >= CLASS_NODATA:
        raise ValueError(f"a dense class map holds at most {CLASS_NODATA - 1} classes, not {len(ask.bands)}")
    class_name = layer + schema.DENSE_CLASSES_SUFFIX
    scores_name = layer + schema.DENSE_SCORES_SUFFIX
    colours = {i: tuple(int(v) for v in rgb.split(",")) for i, rgb in enumerate(ask.colours)}
    tags = {"rsgeo_layer": layer, "rsgeo_dense": method}
    write_cog(
        output.with_name(schema.raster_file_name(output, class_name)), top_class(scores),
        transform=cells.transform, crs=grid.crs, nodata=CLASS_NODATA, colormap=colours,
        category_names=list(ask.bands), descriptions=[schema.RASTER_TOP_CLASS], tags=tags,
        qml=paletted_qml(ask.bands, [(c[0], c[1], c[2]) for c in (colours[i] for i in range(len(ask.bands)))]),
        options=CogOptions(resampling="nearest"),
    )
    write_cog(
        output.with_name(schema.raster_file_name(output, scores_name)), scores,
        transform=cells.transform, crs=grid.crs, nodata=float("nan"), descriptions=list(ask.bands), tags=tags,
        options=CogOptions(resampling="average"),
    )
    return {
        class_name: _record(output, class_name, layer, schema.RASTER_TOP_CLASS, [schema.RASTER_TOP_CLASS], "uint8",
                            CLASS_NODATA, cells, method),
        scores_name: _record(output, scores_name, layer, schema.RASTER_SCORES, ask.bands, "float32", float("nan"),
                             cells, method),
    }


def _range(values: np.ndarray) -> tuple[float, float]:
    """The finite range of a band, for its ramp (0..1 when it has no value)."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def _query_raster(
    output: Path, layer: str, ask: DenseAsk, sims: np.ndarray, grid: ChipGrid, cells: DenseGrid, method: str
) -> dict[str, dict[str, Any]]:
    name = layer + schema.DENSE_SIMILARITY_SUFFIX
    write_cog(
        output.with_name(schema.raster_file_name(output, name)), sims,
        transform=cells.transform, crs=grid.crs, nodata=float("nan"), descriptions=list(ask.bands),
        tags={"rsgeo_layer": layer, "rsgeo_dense": method}, qml=ramp_qml(*_range(sims[0] if sims.ndim == 3 else sims)),
        options=CogOptions(resampling="average"),
    )
    return {name: _record(output, name, layer, schema.RASTER_SIMILARITY, ask.bands, "float32", float("nan"), cells,
                          method)}
