"""``rsgeo query``: free-text and example queries per chip."""

from __future__ import annotations

import argparse

from rsgeo.cli import common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query", help="similarity of every chip to texts or example tiles",
        description="Rank every chip of a scene (or of an encoded GeoPackage) by cosine similarity to a text "
        "query. Each --text gives its own layer; with example tiles or locations, all texts and examples "
        "form one combined query.",
    )
    p.add_argument("source", help="a scene (a file, or a GDAL path or URL such as /vsis3/bucket/x.tif), or a GeoPackage written by rsgeo (answers from its embeddings)")
    common.add_output_options(p, required=False)
    common.add_raster_options(p)
    g = p.add_argument_group("query")
    g.add_argument("--text", action="append", default=[], metavar="TEXT", help='what to look for, e.g. "solar farm" (repeatable, any language the model reads)')
    g.add_argument("--like-tile", action="append", type=int, default=[], metavar="ID", help="a tile id to find more of (repeatable)")
    g.add_argument("--unlike-tile", action="append", type=int, default=[], metavar="ID", help="a tile id to move away from (repeatable)")
    g.add_argument("--like", action="append", default=[], metavar="LOC", help='an example location: "X,Y" or WKT, in the scene CRS or with @EPSG:code (repeatable)')
    g.add_argument("--unlike", action="append", default=[], metavar="LOC", help="a negative example location (repeatable)")
    g.add_argument("--top-k", type=int, metavar="K", help="keep only the K most similar tiles")
    g.add_argument("--threshold", type=float, metavar="S", help="keep only tiles with similarity >= S")
    g.add_argument("--layer", metavar="NAME", help="layer name for a combined query (default query_<slug>)")
    common.add_label_options(p, yes_no=True)
    common.add_zone_options(p, unsure=False)
    common.add_read_options(p)
    common.add_run_options(p, default_model=None)
    common.add_dense_options(p)
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.answers import QuerySpec
    from rsgeo.api import query

    if args.zones is not None:
        return _zones(args)
    labels = common.label_source(args)
    if labels is not None:
        return _from_labels(args, labels)
    examples = args.like_tile or args.unlike_tile or args.like or args.unlike
    if examples:
        specs = [
            QuerySpec(
                texts=tuple(args.text), positive_tiles=tuple(args.like_tile), negative_tiles=tuple(args.unlike_tile),
                positive_locations=tuple(args.like), negative_locations=tuple(args.unlike),
                top_k=args.top_k, threshold=args.threshold, name=args.layer,
            )
        ]
        texts: list[str] = []
    else:
        specs, texts = [], list(args.text)
    common.default_model_unless_result(args)
    bar = common.progress(args)
    out = query(
        args.source, args.output, texts=texts, queries=specs, top_k=args.top_k, threshold=args.threshold,
        read=common.read_options(args), options=common.run_options(args), progress=bar, cancel=common.cancel_check(args), command=common.command_line(args),
    )
    return common.finish(args, bar, out)


def _from_labels(args: argparse.Namespace, labels: object) -> int:
    from rsgeo.errors import OptionError, opt
    from rsgeo.learning import query_with_labels
    from rsgeo.probe import DEFAULT_REG

    if args.like or args.unlike:
        raise OptionError(f"with {opt('labels')}, give examples as labels or with {opt('like_tile')}/{opt('unlike_tile')}")
    report = query_with_labels(
        args.source, texts=args.text, labels=labels, like_tiles=args.like_tile,  # type: ignore[arg-type]
        unlike_tiles=args.unlike_tile, top_k=args.top_k, threshold=args.threshold, layer=args.layer,
        reg=args.reg if args.reg is not None else DEFAULT_REG, save_labels=args.save_labels, output=args.output,
        options=common.run_options(args),
    )
    return common.finish(args, common.progress(args), report.output, report.summary)


def _zones(args: argparse.Namespace) -> int:
    import rsgeo
    from rsgeo.errors import OptionError
    from rsgeo.zones import query_zones

    common.check_zone_run(args)
    if not args.text or args.like_tile or args.unlike_tile or args.like or args.unlike:
        raise OptionError("--zones answers text queries: give --text, without example tiles or locations")
    answer = query_zones(rsgeo.open_result(args.source), args.zones, list(args.text), min_area_px=args.min_zone_px)
    return common.write_zones(args, answer)
