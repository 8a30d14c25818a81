"""The Python API of accuracy assessment: :func:`sample` and :func:`assess` (what the CLI and QGIS call)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsgeo.assessment.accuracy import Assessment
from rsgeo.assessment.classmap import load_class_map
from rsgeo.assessment.compare import assess_layer, assess_others
from rsgeo.assessment.mapcells import map_from_tile_layer
from rsgeo.assessment.report import check_report_dir, comparison_table, write_report
from rsgeo.assessment.samples_file import write_samples
from rsgeo.assessment.sampling import draw
from rsgeo.definitions.schema import LANDCOVER_LAYER
from rsgeo.errors import OptionError, opt

PathLike = str | os.PathLike[str]


def sample(
    result: PathLike,
    output: PathLike,
    *,
    layer: str = LANDCOVER_LAYER,
    n: int = 300,
    stratified: bool = False,
    seed: int = 0,
    min_per_class: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Draw ``n`` random points from a land-cover layer into ``output`` (a GeoPackage with an empty ``label`` field).

    ``stratified`` allocates points per map class (proportional to area, at
    least ``min_per_class`` each: :mod:`rsgeo.assessment.sampling`).
    """
    if n < 1:
        raise OptionError(f"{opt('n')} must be at least 1, got {n}")
    if min_per_class is not None and min_per_class < 0:
        raise OptionError(f"{opt('min_per_class')} must be 0 or more, got {min_per_class}")
    from rsgeo.gpkg import check_output

    out = Path(output)
    check_output(out, overwrite=overwrite)
    target = map_from_tile_layer(Path(result), layer)
    points = draw(target, n, stratified=stratified, seed=seed, minimum=min_per_class)
    return write_samples(out, target, points, overwrite=overwrite)


@dataclass(frozen=True)
class AssessmentRun:
    """What :func:`assess` made: the assessments (the main map first), the report's content and folder."""

    assessments: list[Assessment]
    report: dict[str, Any]
    folder: Path | None

    @property
    def table(self) -> str:
        """The comparison table (one row per map)."""
        from rsgeo.assessment.report import summary

        return comparison_table([summary(a) for a in self.assessments])


def assess(
    result: PathLike,
    reference: PathLike,
    output: PathLike | None = None,
    *,
    layer: str = LANDCOVER_LAYER,
    reference_field: str | None = None,
    class_map: PathLike | None = None,
    purity: float = 0.0,
    compare: Sequence[str] = (),
    overwrite: bool = False,
) -> AssessmentRun:
    """Compare a land-cover layer with reference data; write the report folder ``output`` (if given).

    ``reference``: a categorical raster, or a vector layer (``PATH[:LAYER]``,
    points or polygons) whose class is ``reference_field`` (default ``label``).
    ``compare``: more ``RESULT.gpkg[:LAYER]`` maps assessed the same way.
    """
    folder = Path(output) if output is not None else None
    if folder is not None:
        check_report_dir(folder, overwrite=overwrite)
    cmap = load_class_map(Path(class_map) if class_map is not None else None)
    main = assess_layer(Path(result), layer, Path(reference), field=reference_field, class_map=cmap, purity=purity)
    others = assess_others(compare, Path(reference), field=reference_field, class_map=cmap, purity=purity)
    if folder is not None:
        report = write_report(folder, main, others, overwrite=overwrite)
    else:
        from rsgeo.assessment.report import report_dict

        report = report_dict(main, others)
    return AssessmentRun([main, *others], report, folder)
