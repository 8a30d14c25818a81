"""A random sample of points from a map, to be labelled (``rsgeo sample``).

Points are drawn uniformly over the mapped area: a pixel is drawn (without
replacement) among the pixels of its stratum, then a position uniformly
inside that pixel. Simple random sampling draws among all mapped pixels;
stratified random sampling (``stratified=True``) draws ``n_h`` points in each
map class h.

Allocation (Olofsson et al. 2014, section 5.1.2: proportional allocation
leaves rare classes with too few units for a useful user's accuracy, so give
them a minimum and share the rest in proportion to area): each class gets at
least ``minimum`` points (default ``min(50, n // k)`` for k classes); the
others share what is left in proportion to their mapped area, largest
remainders rounded up, and never more than a class has pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsgeo.assessment.mapcells import MapRaster
from rsgeo.errors import OptionError, opt

#: Olofsson et al.'s suggested minimum sample size per class (their example uses 50 to 100).
DEFAULT_MINIMUM = 50


def allocate(n: int, areas: np.ndarray, *, minimum: int | None = None, capacity: np.ndarray | None = None) -> np.ndarray:
    """Points per stratum: proportional to ``areas`` with at least ``minimum`` each (see the module docstring)."""
    a = np.asarray(areas, np.float64)
    k = int((a > 0).sum())
    if n < 1:
        raise OptionError(f"{opt('n')} must be at least 1, got {n}")
    if k == 0:
        return np.zeros(len(a), np.int64)
    cap = np.asarray(capacity, np.int64) if capacity is not None else np.full(len(a), n, np.int64)
    cap = np.where(a > 0, cap, 0)
    n = min(n, int(cap.sum()))
    floor = DEFAULT_MINIMUM if minimum is None else minimum
    floor = max(0, min(floor, n // k))
    out = np.zeros(len(a), np.int64)
    fixed = np.zeros(len(a), bool)
    # iterate: strata whose proportional share falls below the floor (or above their capacity) are fixed there
    while True:
        free = (a > 0) & ~fixed
        left = n - int(out[fixed].sum())
        if not free.any() or left <= 0:
            break
        share = a[free] / a[free].sum() * left
        idx = np.flatnonzero(free)
        low = share < floor
        high = share > cap[idx]
        if low.any() or high.any():
            out[idx[low]] = np.minimum(floor, cap[idx[low]])
            out[idx[high]] = cap[idx[high]]
            fixed[idx[low | high]] = True
            continue
        base = np.floor(share).astype(np.int64)
        rest = left - int(base.sum())
        order = np.argsort(-(share - base), kind="stable")[:rest]
        base[order] += 1
        out[idx] = base
        break
    return out


@dataclass(frozen=True)
class SamplePoints:
    """Drawn points (map CRS), their cell and map class (``class_names`` index), and the strata."""

    x: np.ndarray
    y: np.ndarray
    cell: np.ndarray
    map_class: np.ndarray
    #: Per class: mapped pixels, area fraction ``W_h`` and points drawn.
    pixels: np.ndarray
    weights: np.ndarray
    allocated: np.ndarray
    stratified: bool
    seed: int


def draw(target: MapRaster, n: int, *, stratified: bool, seed: int, minimum: int | None = None) -> SamplePoints:
    """Draw the sample (see the module docstring); the same ``seed`` gives the same points."""
    rng = np.random.default_rng(seed)
    pixels = target.class_pixels()
    if pixels.sum() == 0:
        raise OptionError(f"{target.source} has no mapped tile to sample from")
    weights = pixels / pixels.sum()
    flat = target.labels.ravel()
    if stratified:
        alloc = allocate(n, pixels.astype(np.float64), minimum=minimum, capacity=pixels)
        chosen = [
            rng.choice(np.flatnonzero(flat == h), size=int(alloc[h]), replace=False)
            for h in range(len(target.class_names)) if alloc[h] > 0
        ]
        picks = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    else:
        mapped = np.flatnonzero(flat >= 0)
        picks = rng.choice(mapped, size=min(n, len(mapped)), replace=False)
    rows, cols = np.divmod(picks, target.shape[1])
    px = cols + rng.random(len(picks))
    py = rows + rng.random(len(picks))
    t = target.transform
    x = t.a * px + t.b * py + t.c
    y = t.d * px + t.e * py + t.f
    map_class = flat[picks].astype(np.int64)
    allocated = np.bincount(map_class, minlength=len(target.class_names))
    return SamplePoints(x, y, target.cells.ravel()[picks], map_class, pixels, weights, allocated, stratified, seed)
