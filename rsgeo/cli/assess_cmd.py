"""``rsgeo assess``: accuracy of a land-cover layer against reference data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsgeo.cli import common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "assess", help="accuracy of a land-cover layer against a reference raster, polygons or labelled points",
        description="Compare a land-cover layer with reference data (a categorical raster, or polygons/points with a "
        "class field, any CRS) and write REPORT_DIR/report.json, report.md and confusion_matrix.png: error matrix, "
        "overall/user's/producer's accuracy, F1, kappa and error-adjusted areas with 95 % confidence intervals "
        "(stratified estimators, Olofsson et al. 2014). See docs/assessment.md.",
    )
    p.add_argument("source", type=Path, metavar="RESULT.gpkg", help="a GeoPackage written by rsgeo classify")
    p.add_argument("--layer", default="landcover", metavar="NAME", help="the land-cover layer, or a class raster the result lists (landcover_class, landcover_dense_class); default landcover")
    p.add_argument("--reference", required=True, metavar="REF", help="a categorical raster, or a vector file[:layer] of points or polygons")
    p.add_argument("--reference-field", metavar="F", help="the vector reference's class field (default label)")
    p.add_argument("--class-map", type=Path, metavar="MAP.yaml", help="map class -> reference class (and raster codes -> names); default: same names")
    p.add_argument("--purity", type=float, default=0.0, metavar="F", help="leave out tiles whose majority reference class covers less than this share of their reference pixels (default 0: majority)")
    p.add_argument("--compare", action="append", default=[], metavar="OTHER.gpkg[:LAYER]", help="another result assessed the same way (repeatable); a table compares them")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="REPORT_DIR", help="the report folder")
    p.add_argument("--overwrite", action="store_true", help="replace the report folder's files")
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.assessment import assess

    result = assess(
        args.source, args.reference, args.output, layer=args.layer, reference_field=args.reference_field,
        class_map=args.class_map, purity=args.purity, compare=args.compare, overwrite=args.overwrite,
    )
    args.written = args.output
    if getattr(args, "embedded", False):
        return 0
    print(result.table)

    def say() -> None:
        if not args.quiet:
            print(f"rsgeo: wrote {args.output}", file=sys.stderr)

    common.announce(args, say)
    return 0
