"""``rsgeo embed``: encode every chip of a scene once."""

from __future__ import annotations

import argparse

from rsgeo.cli import common, search
from rsgeo.definitions.models import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "embed", help="encode a scene's chips once and store the embeddings",
        description="Encode every chip of SCENE with the image encoder and store the tiles and their embeddings "
        "in OUT.gpkg, so that classify and query answer later without reading the scene. With --zones, encode "
        "each polygon from its own chips instead (pixels outside it masked) and store one embedding per zone.",
    )
    p.add_argument("scene", nargs="?", help="the scene (GeoTIFF or any raster GDAL reads; also a GDAL path or URL such as /vsis3/bucket/x.tif, or a STAC item file or URL); none with --stac-search")
    common.add_output_options(p, required=True)
    common.add_zone_options(p, unsure=False)
    search.add_options(p)
    common.add_read_options(p)
    common.add_run_options(p, default_model=DEFAULT_MODEL)
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.api import embed

    if search.asked(args, args.scene):
        return search.run(args)
    bar = common.progress(args)
    if args.zones is not None:
        from rsgeo.zones import embed_zones

        embed_zones(  # the zones not scored are one warning of the library's
            args.scene, args.zones, output=args.output, read=common.read_options(args), options=common.run_options(args),
            min_area_px=args.min_zone_px, command=common.command_line(args), progress=bar, cancel=common.cancel_check(args),
        )
        return common.finish(args, bar, args.output)
    out = embed(args.scene, args.output, read=common.read_options(args), options=common.run_options(args),
                progress=bar, cancel=common.cancel_check(args), command=common.command_line(args))
    return common.finish(args, bar, out)
