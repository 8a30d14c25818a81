"""``rsgeo query``: free-text and example queries per chip."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsgeo.cli import common, search


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query", help="similarity of every chip to texts or example tiles",
        description="Rank every chip of a scene (or of an encoded GeoPackage) by cosine similarity to a text "
        "query. Each --text gives its own layer; with example tiles or locations, all texts and examples "
        "form one combined query.",
    )
    p.add_argument("source", nargs="?", help="a scene (a file, or a GDAL path or URL such as /vsis3/bucket/x.tif, or a STAC item file or URL), or a GeoPackage written by rsgeo (answers from its embeddings); none with --stac-search")
    p.add_argument("more", nargs="*", metavar="RESULT", help="more results (files, glob patterns, folders): one ranked answer over the whole archive, written to -o (docs/archive.md)")
    common.add_output_options(p, required=False)
    common.add_raster_options(p)
    search.add_options(p)
    g = p.add_argument_group("query")
    g.add_argument("--text", action="append", default=[], metavar="TEXT", help='what to look for, e.g. "solar farm" (repeatable, any language the model reads)')
    g.add_argument("--like-tile", action="append", type=int, default=[], metavar="ID", help="a tile id to find more of (repeatable)")
    g.add_argument("--unlike-tile", action="append", type=int, default=[], metavar="ID", help="a tile id to move away from (repeatable)")
    g.add_argument("--like", action="append", default=[], metavar="LOC", help='an example location: "X,Y" or WKT, in the scene CRS or with @EPSG:code (repeatable)')
    g.add_argument("--unlike", action="append", default=[], metavar="LOC", help="a negative example location (repeatable)")
    g.add_argument("--top-k", type=int, metavar="K", help="keep only the K most similar tiles")
    g.add_argument("--threshold", type=float, metavar="S", help="keep only tiles with similarity >= S")
    g.add_argument("--layer", metavar="NAME", help="layer name for a combined query (default query_<slug>)")
    a = p.add_argument_group("archive (several results, a folder or a pattern; see docs/archive.md)")
    a.add_argument("--crs", metavar="CRS", help="CRS of the answer, e.g. EPSG:4326 (default: the results' CRS if they share one, else EPSG:4326)")
    a.add_argument("--index", type=Path, metavar="FILE", help="approximate index of the archive's embeddings (built there if missing; needs rsgeo[archive])")
    a.add_argument("--rebuild-index", action="store_true", help="rebuild --index when it was built from other embeddings (default: refuse it)")
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
    from rsgeo.errors import OptionError, opt

    if search.asked(args, args.source):
        search.refuse(args, "more", "zones", "labels", "like_tile", "unlike_tile", "like", "unlike", "layer", "index",
                      "crs", "dense", "keep_patches")
        if not args.text:
            raise OptionError(f"give what to look for with {opt('text', 'TEXT')}")
        return search.run(args, texts=tuple(args.text), top_k=args.top_k, threshold=args.threshold)
    if args.zones is not None or (not args.more and common.source_is_zone_result(args.source)):
        return _zones(args)
    if is_archive(args):
        return _archive(args)
    if args.index is not None or args.rebuild_index or args.crs is not None:
        raise OptionError(f"{opt('index')}, {opt('rebuild_index')} and {opt('crs')} are for an archive query: "
                          "give several results, a folder or a pattern")
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
    from rsgeo.errors import OptionError
    from rsgeo.zones import caller_reports, query_zones

    if is_archive(args):
        raise OptionError("zones are answered one source at a time: give one scene or result, not several or a folder")
    common.check_zone_run(args)
    if not args.text or args.like_tile or args.unlike_tile or args.like or args.unlike:
        raise OptionError("zones answer text queries: give --text, without example tiles or locations")
    with caller_reports():  # write_zones prints the count of zones not scored, once
        source, zones = common.zone_source(args)
        answer = query_zones(source, zones, list(args.text), min_area_px=args.min_zone_px)
    return common.write_zones(args, answer)


def is_archive(args: argparse.Namespace) -> bool:
    """Several results, a folder or a glob pattern: one answer over the whole archive."""

    source = str(args.source)
    return bool(args.more) or Path(source).is_dir() or (any(c in source for c in "*?[") and not Path(source).exists())


def _archive(args: argparse.Namespace) -> int:
    from rsgeo.archive import query_archive
    from rsgeo.errors import OptionError, opt

    if args.output is None:
        raise OptionError(f"an archive query writes a new GeoPackage: give it with {opt('output', 'ANSWER.gpkg')}")
    asked = [name for name in ("like_tile", "unlike_tile", "like", "unlike") if getattr(args, name)]
    asked += [name for name in ("labels", "layer") if getattr(args, name) is not None]
    asked += [name for name in ("dense", "keep_patches") if getattr(args, name)]
    if asked:
        raise OptionError(f"{opt(asked[0])} is for one result; an archive query takes {opt('text')} "
                          f"(with {opt('top_k')}, {opt('threshold')}, {opt('crs')}, {opt('index')})")
    if args.model is not None:
        raise OptionError(f"an archive query is answered by the model that encoded it; leave out {opt('model')}")
    bar = common.progress(args)
    out = query_archive(
        [args.source, *args.more], args.text, args.output, top_k=args.top_k, threshold=args.threshold, crs=args.crs,
        overwrite=args.overwrite, device=args.device, checkpoint=args.checkpoint, cache_dir=args.cache_dir,
        index=args.index, rebuild_index=args.rebuild_index, progress=bar, cancel=common.cancel_check(args),
    )
    return common.finish(args, bar, out)
