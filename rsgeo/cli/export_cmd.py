"""``rsgeo export``: results (embeddings, tiles, answers) as GeoParquet for other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsgeo.cli import common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export", help="write results as GeoParquet (tiles, answer columns, embeddings)",
        description="Write one or more results as a GeoParquet file: one row per tile with its scene, polygon, the "
        "columns of the result's answer layers and the embedding (fixed-size list of float32), read by DuckDB, "
        "GeoPandas, Arrow or Spark (see docs/archive.md).",
    )
    p.add_argument("results", nargs="+", metavar="RESULT", help="result GeoPackages, glob patterns or folders of them")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.parquet", help="the file to write")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.parquet if it exists")
    p.add_argument("--format", default="geoparquet", choices=["geoparquet"], help="output format (default geoparquet)")
    p.add_argument("--crs", metavar="CRS", help="CRS of the geometries, e.g. EPSG:4326 (default: the results' CRS if they share one, else EPSG:4326)")
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.export import export_results

    bar = common.progress(args)
    out = export_results(args.results, args.output, format=args.format, crs=args.crs, overwrite=args.overwrite,
                 progress=bar, cancel=common.cancel_check(args))
    return common.finish(args, bar, out)
