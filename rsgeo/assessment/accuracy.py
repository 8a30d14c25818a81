"""Compare a map with reference data: the assessment units, the error matrix and the estimates.

Two kinds of reference give two kinds of unit:

* **points** (a sample, e.g. ``rsgeo sample``'s points labelled in QGIS, or a
  field survey): each labelled point is a unit; its map class is the class of
  the cell it falls in. The strata weights are the map's class areas over
  the whole map.
* **wall to wall** (a raster or polygons): every map cell with reference data
  under it is a unit; its reference class is the *majority* of the
  reference pixels in the cell (a tie goes to the class listed first in the
  error matrix), and its *purity* is the share of those pixels in that class.
  With ``purity`` above 0, cells less pure than that are left out of the
  error matrix (counted in the report) but stay in the mapped area. The
  population is the cells that have reference data: the strata weights are
  the map's class areas over them.

The estimates are :func:`rsgeo.assessment.estimators.estimate` in either case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsgeo.assessment.classmap import ClassMap, Matching, match_classes
from rsgeo.assessment.estimators import Estimates, estimate
from rsgeo.assessment.mapcells import MapRaster
from rsgeo.assessment.reference import PointSample, Reference, WallToWall
from rsgeo.errors import OptionError, ReferenceDataError, opt

#: Confused units listed in a report.
WORST_LISTED = 20


@dataclass(frozen=True)
class Units:
    """The assessment units that made the error matrix (indices into the matrix's classes)."""

    #: The cell (tile id) of each unit.
    cell: np.ndarray
    map_class: np.ndarray
    reference_class: np.ndarray
    #: Share of the unit's reference pixels in its reference class (1 for points).
    purity: np.ndarray
    #: Position (map CRS): a cell's centre, or the point.
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Assessment:
    """A map compared with a reference."""

    map_source: str
    reference_source: str
    reference_kind: str
    unit: str
    matching: Matching
    estimates: Estimates
    units: Units
    purity_threshold: float
    #: Units (and, for cells, m²) left out, by reason.
    excluded: dict[str, float]
    crs: str
    #: The name of a unit's id in reports (``tile_id``, or ``raster_cell`` for a class raster).
    unit_key: str = "tile_id"

    def worst_confused(self, limit: int = WORST_LISTED) -> list[dict[str, object]]:
        """The confused units, most confidently wrong first (purest reference, then cell id)."""
        u = self.units
        wrong = np.flatnonzero(u.map_class != u.reference_class)
        order = wrong[np.lexsort((u.cell[wrong], -u.purity[wrong]))][:limit]
        names = self.estimates.classes
        return [
            {self.unit_key: int(u.cell[i]), "x": float(u.x[i]), "y": float(u.y[i]), "map_class": names[u.map_class[i]],
             "reference_class": names[u.reference_class[i]], "purity": round(float(u.purity[i]), 4)}
            for i in order
        ]


def assess_map(
    target: MapRaster, reference: Reference, class_map: ClassMap, *, reference_source: str, purity: float = 0.0,
) -> Assessment:
    """Match classes, form the units and estimate (see the module docstring)."""
    if not 0.0 <= purity <= 1.0:
        raise OptionError(f"{opt('purity')} must be in [0, 1], got {purity}")
    matching = match_classes(class_map, target.class_names, reference.classes)
    classes = matching.classes
    pos = {c: i for i, c in enumerate(classes)}
    map_to = np.asarray([pos.get(matching.assessed.get(m, ""), -1) for m in target.class_names] + [-1], np.int32)
    ref_to = np.asarray([pos.get(r, -1) for r in reference.classes] + [-1], np.int32)
    # index -1 picks the trailing -1: unmapped pixels and unlabelled references stay -1
    mapped = map_to[target.labels]
    unmatched_pixels = int(((target.labels >= 0) & (mapped < 0)).sum())
    excluded: dict[str, float] = {"unmatched_map_class_m2": unmatched_pixels * target.pixel_area}
    k = len(classes)
    if isinstance(reference, PointSample):
        units, area, more = _point_units(target, reference, mapped, ref_to, k)
        kind, unit = "points", "point"
    else:
        units, area, more = _cell_units(target, reference, mapped, ref_to, k, purity)
        kind, unit = reference.kind, "cell"
    excluded.update(more)
    if len(units.cell) == 0:
        raise ReferenceDataError(
            f"{reference_source} leaves no unit to compare with {target.source}: no labelled reference falls on a "
            "mapped tile of an assessed class"
        )
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (units.map_class, units.reference_class), 1)
    keep = np.flatnonzero((counts.sum(axis=0) > 0) | (counts.sum(axis=1) > 0) | (area > 0))
    remap = np.full(k, -1, np.int64)
    remap[keep] = np.arange(len(keep))
    units = Units(units.cell, remap[units.map_class], remap[units.reference_class], units.purity, units.x, units.y)
    kept = tuple(classes[i] for i in keep)
    est = estimate(kept, counts[np.ix_(keep, keep)], area[keep])
    matching = Matching(matching.assessed, matching.unmatched_map, kept)
    crs = target.crs.to_string() if hasattr(target.crs, "to_string") else str(target.crs)
    return Assessment(target.source, reference_source, kind, unit, matching, est, units, purity, excluded, crs, target.unit_key)


def _point_units(
    target: MapRaster, ref: PointSample, mapped: np.ndarray, ref_to: np.ndarray, k: int,
) -> tuple[Units, np.ndarray, dict[str, float]]:
    rows, cols, inside = target.pixel_of(ref.x, ref.y)
    cell = np.where(inside, target.cells[rows, cols], -1)
    map_class = np.where(inside, mapped[rows, cols], -1)
    ref_class = ref_to[ref.labels]
    on_map = inside & (cell >= 0)
    ok = on_map & (map_class >= 0) & (ref_class >= 0)
    if not on_map.any():
        raise ReferenceDataError(
            f"none of the {len(ref.x)} reference points falls on a mapped tile of {target.source}; check that they "
            "cover the same scene"
        )
    area = np.bincount(mapped[mapped >= 0], minlength=k).astype(np.float64) * target.pixel_area
    excluded = {
        "points_off_the_map": float((~on_map).sum()),
        "points_unlabelled": float(ref.unlabelled),
        "points_on_unmatched_map_class": float((on_map & (map_class < 0) & (ref_class >= 0)).sum()),
    }
    units = Units(cell[ok], map_class[ok], ref_class[ok], np.ones(int(ok.sum())), ref.x[ok], ref.y[ok])
    return units, area, excluded


def _cell_units(
    target: MapRaster, ref: WallToWall, mapped: np.ndarray, ref_to: np.ndarray, k: int, purity: float,
) -> tuple[Units, np.ndarray, dict[str, float]]:
    ref_class = ref_to[ref.labels].ravel()
    cells = target.cells.ravel()
    flat_mapped = mapped.ravel()
    have_ref = (cells >= 0) & (ref_class >= 0)
    if not have_ref.any():
        raise ReferenceDataError(f"the reference has no class under any mapped tile of {target.source}")
    n_cells = int(cells.max()) + 1
    # cell x reference-class pixel counts: dense when that table is small (tile cells), else through the pairs
    pair = cells[have_ref] * k + ref_class[have_ref]
    if n_cells * k <= 4 * len(cells):
        table = np.bincount(pair, minlength=n_cells * k).reshape(n_cells, k)
        total = table.sum(axis=1)
        cell_ids = np.flatnonzero(total)
        majority = table[cell_ids].argmax(axis=1)  # ties -> the smaller class index
        share = table[cell_ids, majority] / total[cell_ids]
    else:
        uniq, n = np.unique(pair, return_counts=True)
        pair_cell, pair_class = np.divmod(uniq, k)
        cell_ids, first = np.unique(pair_cell, return_index=True)
        order = np.lexsort((pair_class, -n, pair_cell))
        best = order[np.searchsorted(pair_cell[order], cell_ids)]
        majority = pair_class[best]
        share = n[best] / np.add.reduceat(n, first)
    # each cell's map class (one per cell), and the population: every pixel of the cells with reference data
    cell_map_class = np.full(n_cells, -1, np.int64)
    on = cells >= 0
    cell_map_class[cells[on]] = flat_mapped[on]
    with_ref = np.zeros(n_cells, bool)
    with_ref[cell_ids] = True
    in_population = on & with_ref[np.where(on, cells, 0)] & (flat_mapped >= 0)
    area = np.bincount(flat_mapped[in_population], minlength=k).astype(np.float64) * target.pixel_area
    unit_class = cell_map_class[cell_ids]
    ok = (share >= purity) & (unit_class >= 0)
    present = np.zeros(n_cells, bool)
    present[cells[on]] = True
    excluded = {
        "cells_below_purity": float(((share < purity) & (unit_class >= 0)).sum()),
        "cells_without_reference": float(present.sum() - len(cell_ids)),
        "cells_of_unmatched_map_class": float((unit_class < 0).sum()),
    }
    centres = target.cell_centres(cell_ids[ok])
    units = Units(cell_ids[ok], unit_class[ok], majority[ok], share[ok], centres[:, 0], centres[:, 1])
    return units, area, excluded
