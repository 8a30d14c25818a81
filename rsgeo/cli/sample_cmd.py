"""``rsgeo sample``: random points from a land-cover layer, to label as reference."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsgeo.cli import common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sample", help="random points from a land-cover layer, with an empty label field to fill in (QGIS)",
        description="Draw random points over a land-cover layer's mapped area (simple random, or stratified by map "
        "class: proportional to area with a minimum per class) into a GeoPackage whose 'label' field you fill in, "
        "then run `rsgeo assess RESULT --reference samples.gpkg`. See docs/assessment.md.",
    )
    p.add_argument("source", type=Path, metavar="RESULT.gpkg", help="a GeoPackage written by rsgeo classify")
    p.add_argument("--layer", default="landcover", metavar="NAME", help="the land-cover layer, or a class raster the result lists (landcover_class, landcover_dense_class); default landcover")
    p.add_argument("-n", "--n-points", dest="n", type=int, default=300, metavar="N", help="number of points (default 300)")
    p.add_argument("--stratified", action="store_true", help="stratified random by map class (default: simple random)")
    p.add_argument("--min-per-class", type=int, metavar="N", help="with --stratified: at least N points per class (default min(50, n / classes))")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0): the same seed draws the same points")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="SAMPLES.gpkg", help="the sample GeoPackage to write")
    p.add_argument("--overwrite", action="store_true", help="replace SAMPLES.gpkg if it exists")
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.assessment import sample

    out = sample(
        args.source, args.output, layer=args.layer, n=args.n, stratified=args.stratified, seed=args.seed,
        min_per_class=args.min_per_class, overwrite=args.overwrite,
    )
    return common.finish(args, common.progress(args), out)
