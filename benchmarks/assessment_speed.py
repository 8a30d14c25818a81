"""Speed and memory of ``rsgeo assess`` / ``rsgeo sample`` on a synthetic map of a given size.

The map is a chip grid (``--chip`` px chips every ``--stride`` px, so tiles overlap) over an
``--size`` x ``--size`` scene with random tile classes; the reference is a random categorical raster
on the same grid, blockwise constant so that tiles have a majority. Prints the seconds of each step
and the peak traced memory per scene pixel (tracemalloc: NumPy's arrays), all from one run.

    python benchmarks/assessment_speed.py --size 4000
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from rsgeo.assessment.accuracy import assess_map
from rsgeo.assessment.classmap import ClassMap
from rsgeo.assessment.mapcells import MapRaster, grid_cells
from rsgeo.assessment.reference import PointSample, WallToWall
from rsgeo.assessment.sampling import draw
from rsgeo.grid import ChipGrid, ChipSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--chip", type=int, default=64)
    ap.add_argument("--stride", type=int, default=48)
    ap.add_argument("--classes", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    names = tuple(f"c{i}" for i in range(args.classes))
    grid = ChipGrid(args.size, args.size, Affine(10, 0, 500000, 0, -10, 5000000), ChipSpec(args.chip, args.stride),
                    crs=CRS.from_epsg(32633))
    px = args.size * args.size
    tracemalloc.start()
    t0 = time.perf_counter()
    cells = grid_cells(grid)
    tile_class = rng.integers(0, args.classes, len(grid)).astype(np.int32)
    target = MapRaster(tile_class[cells], cells, names, grid.transform, grid.crs, "synthetic")
    t_map = time.perf_counter() - t0
    block = max(1, args.chip // 2)
    coarse = rng.integers(0, args.classes, (args.size // block + 1, args.size // block + 1))
    ref = WallToWall(np.kron(coarse, np.ones((block, block), np.int32)).astype(np.int32)[: args.size, : args.size], names, "raster")
    t0 = time.perf_counter()
    census = assess_map(target, ref, ClassMap(), reference_source="synthetic reference")
    t_census = time.perf_counter() - t0
    t0 = time.perf_counter()
    points = draw(target, 3000, stratified=True, seed=1)
    t_sample = time.perf_counter() - t0
    labels = rng.integers(0, args.classes, len(points.x))
    t0 = time.perf_counter()
    assess_map(target, PointSample(points.x, points.y, labels, names, 0), ClassMap(), reference_source="points")
    t_points = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"scene {args.size} x {args.size} px ({px / 1e6:.1f} Mpx), {len(grid)} tiles of {args.chip} px every {args.stride} px, "
          f"{args.classes} classes, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"map as cells          {t_map:8.2f} s")
    print(f"census assessment     {t_census:8.2f} s  ({int(census.estimates.counts.sum())} cells)")
    print(f"stratified sample     {t_sample:8.2f} s  (3000 points)")
    print(f"point assessment      {t_points:8.2f} s")
    print(f"peak traced memory    {peak / 2**20:8.0f} MiB = {peak / px:.1f} bytes per scene pixel")


if __name__ == "__main__":
    main()
