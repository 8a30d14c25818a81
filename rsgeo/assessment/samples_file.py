"""The sample GeoPackage ``rsgeo sample`` writes: points with an empty ``label`` field, and the strata.

Open it in QGIS, toggle editing and type each point's reference class into
``label`` (the ``map_class`` field shows what the map says; hide it to label
blind). ``rsgeo assess RESULT --reference samples.gpkg`` then reads the labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.assessment.mapcells import MapRaster
from rsgeo.assessment.sampling import SamplePoints
from rsgeo.definitions import schema
from rsgeo.gpkg import atomic_output, check_output


def write_samples(path: Path, target: MapRaster, points: SamplePoints, *, overwrite: bool) -> Path:
    """Write the points layer and the strata table atomically."""
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    import shapely

    check_output(path, overwrite=overwrite)
    names = np.asarray(target.class_names, dtype=object)
    n = len(points.x)
    frame = gpd.GeoDataFrame(
        {
            schema.COL_SAMPLE_ID: np.arange(1, n + 1, dtype=np.int64),
            target.unit_key: points.cell.astype(np.int64),  # tile_id, or raster_cell for a class raster
            schema.COL_MAP_CLASS: names[points.map_class] if n else np.zeros(0, object),
            schema.COL_STRATUM_WEIGHT: points.weights[points.map_class] if n else np.zeros(0),
            schema.COL_LABEL: pd.Series([None] * n, dtype="string"),
        },
        geometry=shapely.points(points.x, points.y), crs=target.crs,
    )
    strata = pd.DataFrame({
        schema.COL_STRATUM: list(target.class_names),
        schema.COL_MAP_PIXELS: points.pixels.astype(np.int64),
        schema.COL_MAP_AREA_M2: points.pixels * target.pixel_area,
        schema.COL_STRATUM_WEIGHT: points.weights,
        schema.COL_N_SAMPLES: points.allocated.astype(np.int64),
    })
    with atomic_output(path) as tmp:
        pyogrio.write_dataframe(frame, tmp, layer=schema.SAMPLES_LAYER, driver="GPKG", geometry_type="Point",
                                dataset_options={"VERSION": "1.2"},
                                layer_options={"DESCRIPTION": _description(target, points)})
        pyogrio.write_dataframe(strata, tmp, layer=schema.STRATA_TABLE, driver="GPKG")
    return path


def _description(target: MapRaster, points: SamplePoints) -> str:
    design: dict[str, Any] = {
        "map": target.source, "design": "stratified random" if points.stratified else "simple random",
        "seed": points.seed, "n": int(len(points.x)),
    }
    return json.dumps(design)
