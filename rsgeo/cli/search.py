"""``--stac-search`` on embed, classify and query: the items a STAC API finds, run as a batch.

The options are declared here once for the three commands; the run is the one of
``rsgeo batch`` (:class:`rsgeo.batch.Batch`) over the items kept as local item files
(:func:`rsgeo.stac_search.staged_items`), so there is no second loop over scenes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from rsgeo.cli import common

#: The search options other than --stac-search itself, with their defaults (given without it: a mistake).
_FILTERS = {"collection": None, "bbox": None, "bbox_crs": "EPSG:4326", "datetime": None, "max_cloud": None, "max_items": None,
            "mosaic": False, "merge": None, "merge_crs": None}


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("STAC search (instead of a scene: one result per item found, OUT_DIR/<item id>.gpkg; docs/inputs.md)")
    g.add_argument("--stac-search", metavar="URL", help="search this STAC API (its landing page, e.g. https://earth-search.aws.element84.com/v1) and run on every item found; -o is then a folder (needs rsgeo[stac])")
    g.add_argument("--collection", action="append", metavar="ID", help="collection to search, e.g. sentinel-2-l2a (repeatable)")
    g.add_argument("--bbox", metavar="MINX,MINY,MAXX,MAXY", help="items that intersect this box (in --bbox-crs)")
    g.add_argument("--bbox-crs", default="EPSG:4326", metavar="CRS", help="CRS of --bbox (default EPSG:4326, longitude/latitude); reprojected to EPSG:4326 for the search")
    g.add_argument("--datetime", metavar="WHEN", help="a date, instant or interval, e.g. 2024-06-01/2024-06-30")
    g.add_argument("--max-cloud", type=float, metavar="PCT", help="only items whose eo:cloud_cover is at most PCT percent")
    g.add_argument("--max-items", type=int, metavar="N", help="at most N items (default 10)")
    g.add_argument("--merge", type=Path, metavar="MERGED.gpkg", help="also write every item's layers into one GeoPackage, with a scene column (as rsgeo batch --merge)")
    g.add_argument("--merge-crs", metavar="CRS", help="CRS of the merged layers (default: the items' CRS if they share one, else EPSG:4326)")
    g.add_argument("--mosaic", action="store_true", help="one scene from all items found (one CRS; later items drawn over earlier ones) and one result, -o OUT.gpkg")


def asked(args: argparse.Namespace, scene: str | None) -> bool:
    """Whether the run is a search; one line for a scene and a search at once, or search filters without one."""
    from rsgeo.errors import OptionError, opt

    if args.stac_search is None:
        given = [name for name, default in _FILTERS.items() if getattr(args, name) != default]
        if given:
            raise OptionError(f"{opt(given[0])} filters a STAC search: give {opt('stac_search', 'URL')} too")
        if scene is None:
            raise OptionError(f"give a scene, or find scenes with {opt('stac_search', 'URL')}")
        return False
    if scene is not None:
        raise OptionError(f"give a scene or {opt('stac_search', 'URL')}, not both (the search finds the scenes)")
    return True


def refuse(args: argparse.Namespace, *names: str) -> None:
    """One line for an option that answers one result and does not go with a search."""
    from rsgeo.errors import OptionError, opt

    for name in names:
        value = getattr(args, name, None)
        if value not in (None, False, [], ()):
            raise OptionError(f"{opt(name)} does not go with {opt('stac_search')}, which writes one result per item; "
                              "run it on those results afterwards, or leave it out")


def run(args: argparse.Namespace, *, classes: tuple[str, ...] | None = None, class_set: str | None = None,
        templates: tuple[str, ...] | None = None, lang: str | None = None, layer: str | None = None,
        texts: tuple[str, ...] = (), top_k: int | None = None, threshold: float | None = None) -> int:
    """Search, keep the items as local item files in ``-o OUT_DIR``, and run them as one batch."""
    from rsgeo.batch import Batch, BatchJob
    from rsgeo.cli.batch_cmd import BatchProgress
    from rsgeo.definitions.schema import LANDCOVER_LAYER
    from rsgeo.errors import OptionError, opt
    from rsgeo.stac_search import DEFAULT_MAX_ITEMS, ITEMS_FOLDER, StacSearch, parse_bbox, search_items, staged_items

    out_dir = args.output
    if args.mosaic and args.merge is not None:
        raise OptionError(f"{opt('mosaic')} writes one result already: leave out {opt('merge')}")
    if args.merge_crs is not None and args.merge is None:
        raise OptionError(f"{opt('merge_crs')} is the CRS of the merged layers: give {opt('merge', 'MERGED.gpkg')} too")
    if args.mosaic:
        if out_dir is None or out_dir.suffix.lower() != ".gpkg":
            raise OptionError(f"{opt('mosaic')} writes one result: give it with {opt('output', 'OUT.gpkg')}")
        out_dir = out_dir.parent
        if not out_dir.is_dir():
            raise OptionError(f"output folder {out_dir} does not exist; create it first (mkdir -p {out_dir})")
    elif out_dir is None or not out_dir.is_dir():
        fix = "" if out_dir is None else ", not a GeoPackage" if out_dir.suffix.lower() == ".gpkg" else f" (mkdir -p {out_dir})"
        raise OptionError(f"{opt('stac_search')} writes one result per item into a folder: give an existing folder "
                          f"with {opt('output', 'OUT_DIR')}{fix} (or one mosaic of the items with {opt('mosaic')})")
    search = StacSearch(
        args.stac_search, collections=tuple(args.collection or ()),
        bbox=parse_bbox(args.bbox, args.bbox_crs) if args.bbox is not None else None, datetime=args.datetime,
        max_cloud=args.max_cloud, max_items=args.max_items if args.max_items is not None else DEFAULT_MAX_ITEMS,
    )
    options = common.run_options(args)
    read = common.read_options(args, for_items=True)
    items = search_items(search)
    written: list[Path] = []
    with staged_items(items, out_dir) as paths:
        try:
            scenes = paths
            if args.mosaic:
                from rsgeo.stac_mosaic import mosaic_item

                mosaic, written = mosaic_item(paths, out_dir / ITEMS_FOLDER / "mosaic", args.output.stem)
                scenes = [mosaic]
            if args.bands and read.bands is None:  # common names: the same bands in every item
                read = dataclasses.replace(read, bands=_item_bands(args.bands, scenes))
            job = BatchJob(
                output_dir=out_dir, inputs=tuple(scenes), classes=classes, class_set=class_set, templates=templates,
                lang=lang, layer=layer or LANDCOVER_LAYER, texts=texts, top_k=top_k, threshold=threshold,
                read=read, options=options, merge=args.merge, merge_crs=args.merge_crs,
            )
            batch = Batch.plan(job)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            for folder in (out_dir / ITEMS_FOLDER / "mosaic" / args.output.stem, out_dir / ITEMS_FOLDER / "mosaic"):
                if args.mosaic and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise
    outputs = batch.run(progress=BatchProgress("none" if args.quiet else args.progress, batch.scenes))
    args.written = outputs[0] if args.mosaic else out_dir
    what = f"{args.output} (a mosaic of {len(items)} STAC items)" if args.mosaic else \
        f"{len(outputs)} results to {out_dir} (one per STAC item)"
    if not args.quiet and not getattr(args, "embedded", False):
        common.announce(args, lambda: print(f"rsgeo: wrote {what}", file=sys.stderr))
    return 0


def _item_bands(text: str, paths: Any) -> tuple[int, ...]:
    """``--bands`` by name, as band numbers of every item's VRT; one line if the items disagree."""
    from rsgeo.errors import OptionError, opt
    from rsgeo.stac import band_indices

    names = [b.strip() for b in text.split(",")]
    found = {path: band_indices(path, names) for path in paths}
    if len(set(found.values())) > 1:
        raise OptionError(f"the items found hold {opt('bands', text)} as different band numbers; "
                          "search one collection at a time")
    return next(iter(found.values()))
