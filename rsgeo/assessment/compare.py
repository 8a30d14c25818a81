"""Several maps against one reference: one assessment each, and the table that compares them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rsgeo.assessment.accuracy import Assessment, assess_map
from rsgeo.assessment.classmap import ClassMap
from rsgeo.assessment.mapcells import map_from_tile_layer
from rsgeo.assessment.reference import read_reference, split_layer
from rsgeo.definitions.schema import LANDCOVER_LAYER


def assess_layer(
    result: str | Path, layer: str, reference: str | Path, *, field: str | None, class_map: ClassMap, purity: float,
) -> Assessment:
    """One result's land-cover layer against the reference (read onto that result's own grid)."""
    target = map_from_tile_layer(result, layer)
    ref = read_reference(reference, target, field=field, class_map=class_map)
    return assess_map(target, ref, class_map, reference_source=Path(str(reference)).name, purity=purity)


def assess_others(
    others: Sequence[str], reference: str | Path, *, field: str | None, class_map: ClassMap, purity: float,
) -> list[Assessment]:
    """``RESULT.gpkg[:LAYER]`` specs (layer default ``landcover``), each assessed like the main map."""
    out = []
    for spec in others:
        path, layer = split_layer(spec)
        out.append(assess_layer(path, layer or LANDCOVER_LAYER, reference, field=field, class_map=class_map, purity=purity))
    return out
