"""``rsgeo batch``: many scenes in one run, one GeoPackage each, optionally merged."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rsgeo.cli import common
from rsgeo.definitions.models import DEFAULT_MODEL
from rsgeo.definitions.options import DEFAULT_SCENES_IN_FLIGHT as SCENES_IN_FLIGHT


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "batch", help="encode (and classify/query) many scenes: one GeoPackage per scene",
        description="Run embed, classify and/or query over many scenes (files, glob patterns, folders, remote GDAL "
        "paths or URLs, or a --scene-list file; a VRT mosaic is one scene), writing OUT_DIR/<scene>.gpkg for each, with the schema of a single-scene run, "
        "and optionally one merged GeoPackage with a scene column. With --cluster the chips of every scene "
        "are spread over a Dask cluster.",
    )
    p.add_argument("inputs", nargs="*", metavar="SCENE", help="scene files, glob patterns ('tiles/*.tif'), folders, or remote "
                   "GDAL paths and URLs (/vsis3/bucket/x.tif, https://host/x.tif)")
    p.add_argument("--scene-list", action="append", default=[], type=Path, metavar="FILE",
                   help="a text file naming one scene (file, pattern, folder or URL) per line; relative paths are "
                   "relative to the file's folder (repeatable)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder for the per-scene GeoPackages (must exist)")
    p.add_argument("--overwrite", action="store_true", help="replace per-scene outputs (and the merged file) that exist")
    p.add_argument("--merge", type=Path, metavar="MERGED.gpkg", help="also write every scene's layers into one GeoPackage, with a scene column")
    p.add_argument("--scenes-in-flight", type=int, metavar="N",
                   help=f"with --cluster: scenes encoded at once (default {SCENES_IN_FLIGHT}); raise it for many scenes "
                   "smaller than one block per worker")
    p.add_argument("--merge-crs", metavar="CRS", help="CRS of the merged layers, e.g. EPSG:3857 (default: the scenes' CRS if they share one, else EPSG:4326)")
    g = p.add_argument_group("questions (none: only embed)")
    g.add_argument("--classes", metavar="A,B,...", help='land-cover classes, e.g. "forest,water,urban area"')
    g.add_argument("--class-set", metavar="NAME|FILE", help="a built-in class set or a YAML/CSV file")
    g.add_argument("--template", action="append", dest="templates", metavar="TEXT", help="prompt template with {} (repeatable)")
    g.add_argument("--lang", metavar="CODE", help="language of the class names")
    g.add_argument("--layer", default="landcover", metavar="NAME", help="land-cover layer name (default landcover)")
    g.add_argument("--text", action="append", default=[], metavar="TEXT", help="a text query, one layer each (repeatable)")
    g.add_argument("--top-k", type=int, metavar="K", help="keep only the K most similar tiles of each scene")
    g.add_argument("--threshold", type=float, metavar="S", help="keep only tiles with similarity >= S")
    common.add_read_options(p)
    common.add_run_options(p, default_model=DEFAULT_MODEL)
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.batch import Batch, BatchJob
    from rsgeo.prompts import parse_class_list

    job = BatchJob(
        output_dir=args.output, inputs=tuple(args.inputs), scene_lists=tuple(args.scene_list),
        classes=tuple(parse_class_list(args.classes)) if args.classes is not None else None,
        class_set=args.class_set, templates=tuple(args.templates) if args.templates else None, lang=args.lang,
        layer=args.layer, texts=tuple(args.text), top_k=args.top_k, threshold=args.threshold,
        merge=args.merge, merge_crs=args.merge_crs, scenes_in_flight=args.scenes_in_flight,
        read=common.read_options(args), options=common.run_options(args),
    )
    batch = Batch.plan(job)
    outputs = batch.run(progress=BatchProgress("none" if args.quiet else args.progress, batch.scenes))
    if not args.quiet:
        common.announce(args, lambda: print(
            f"rsgeo: wrote {len(outputs)} results to {args.output}"
            + (f" and merged them into {args.merge}" if args.merge is not None else ""), file=sys.stderr))
    return 0


class BatchProgress:
    """Progress of the whole run (chips over every scene) and of the scenes in flight.

    On a cluster several scenes run at once (--scenes-in-flight): the label names each scene that has
    started and not finished, e.g. ``chips (scene 2/6 a: 20/20; scene 3/6 b: 4/20)``.
    """

    def __init__(self, mode: str, plans: Any) -> None:
        from rsgeo.cli.progress import Progress

        self.bar = Progress(mode)
        self.mode = self.bar.mode
        self.plans = list(plans)
        self.done = [0] * len(self.plans)
        self.active: dict[int, tuple[int, int]] = {}
        self.finished: set[int] = set()

    def _where(self, index: int, done: int, total: int) -> str:
        return f"scene {index + 1}/{len(self.plans)} {self.plans[index].name}: {done}/{total}"

    def __call__(self, index: int, done: int, total: int) -> None:
        plan = self.plans[index]
        self.done[index] = done
        if done < total:
            self.active[index] = (done, total)
        else:
            self.active.pop(index, None)
        run_done, run_total = sum(self.done), sum(p.chips for p in self.plans)
        where = self._where(index, done, total)
        if self.mode == "json":
            self.bar.write_line(json.dumps({"event": "progress", "done": run_done, "total": run_total, "scene": plan.name,
                                            "scene_index": index, "scene_done": done, "scene_total": total}))
        else:
            shown = [self._where(i, *self.active[i]) for i in sorted(self.active)] or [where]
            self.bar.label = f"chips ({'; '.join(shown)})"
            self.bar(run_done, run_total)
            if self.mode == "lines" and done >= total and index not in self.finished:
                self.finished.add(index)
                self.bar.write_line(f"rsgeo: {where} chips, done")
