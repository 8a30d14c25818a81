"""Many scenes in one run: one result GeoPackage per scene, optionally merged.

Inputs are files, glob patterns, folders (a GDAL VRT mosaic is one scene),
remote GDAL paths or URLs (``/vsis3/bucket/x.tif``, ``https://host/x.tif``),
and text files listing scenes one per line.
Every scene is checked and its chips counted before any is encoded, so a bad
file stops the run at once, not hours in, and progress covers the whole run.
Each scene is then written by the ordinary single-scene path (same schema,
styles and embeddings; on a cluster with ``RunOptions.cluster``); a finished
scene's output is complete (written atomically), so ``resume`` skips it and
continues the unfinished one from its journal.

The merged GeoPackage (``docs/schema.md``, "Merged results") holds each
result layer of every scene with a ``scene`` column, in one CRS.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsgeo.definitions.options import DEFAULT_SCENES_IN_FLIGHT
from rsgeo.definitions.schema import LANDCOVER_LAYER
from rsgeo.errors import Cancelled, OptionError, OutputExistsError, SceneError, opt
from rsgeo.options import RunOptions
from rsgeo.scene import ReadOptions
from rsgeo.sources import SceneSource, is_remote

logger = logging.getLogger(__name__)

#: File name endings taken as scenes when a folder or pattern is given.
SCENE_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
#: Table of the merged GeoPackage listing its scenes.
SCENES_TABLE = "rsgeo_scenes"
#: Per-scene progress: ``(scene index, done, total)``.
SceneProgress = Callable[[int, int, int], None]
#: Scenes encoded at once on a cluster: the next one's blocks keep the workers busy while the
#: current one's last blocks finish and its GeoPackage is written.
SCENES_IN_FLIGHT = DEFAULT_SCENES_IN_FLIGHT


@dataclass(frozen=True)
class BatchScene:
    """One scene of a batch: where it is read from and written to."""

    index: int
    scene: Path | str  # a local file, or a remote GDAL path or URL (rsgeo.sources)
    output: Path
    name: str  # the value of the merged layers' ``scene`` column
    chips: int  # chips of its grid (before nodata is skipped)
    done: bool  # its output exists and resume was asked: not encoded again


def expand_inputs(inputs: Sequence[str | Path], *, lists: Sequence[str | Path] = ()) -> list[Path | str]:
    """Scenes from files, glob patterns, folders and remote paths, in the order given.

    Local scenes come back as ``Path``; remote ones (``/vsis3/…``,
    ``https://…``: :func:`rsgeo.sources.is_remote`) as the ``str`` given,
    neither globbed nor checked here (GDAL opens them when the batch is
    planned). ``lists`` are text files naming one scene (or pattern, or
    folder) per line, after the inputs; see :func:`read_scene_list`.
    """
    items: list[str | Path] = list(inputs)
    for listing in lists:
        items += read_scene_list(listing)
    found: dict[Path | str, Path | str] = {}
    for item in items:
        if is_remote(item):
            remote = SceneSource.of(item).path
            found.setdefault(remote, remote)
            continue
        for f in _local_scenes(str(item)):
            found.setdefault(f.resolve(), f)
    return list(found.values())


def _local_scenes(text: str) -> list[Path]:
    path = Path(text)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in SCENE_SUFFIXES)
        what = f"folder {text}"
    elif any(c in text for c in "*?[") and not path.exists():
        files = sorted(
            Path(f) for f in glob.glob(text, recursive=True)
            if Path(f).is_file() and Path(f).suffix.lower() in SCENE_SUFFIXES
        )
        what = f"pattern {text!r}"
    elif path.is_file():
        files, what = [path], text
    else:
        raise SceneError(f"{text}: no such scene, folder or pattern; check the path")
    if not files:
        raise OptionError(f"the {what} matches no scene (looked for {', '.join(SCENE_SUFFIXES)})")
    return files


def read_scene_list(path: str | Path) -> list[str]:
    """The scenes a text file lists: one per line, blank lines and ``#`` comments skipped.

    A line is anything the command line takes (a file, pattern, folder, or
    remote path); a relative local path is relative to the list's folder,
    so a list works from wherever the command runs.
    """
    listing = Path(path)
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OptionError(f"cannot read the scene list {listing}: {exc.strerror or exc}; check the path") from None
    except UnicodeDecodeError:
        raise OptionError(f"the scene list {listing} is not UTF-8 text; give a text file with one scene per line") from None
    scenes = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not is_remote(text) and not Path(text).is_absolute():
            text = str(listing.parent / text)
        scenes.append(text)
    if not scenes:
        raise OptionError(f"the scene list {listing} names no scene; give one scene path or URL per line")
    return scenes


def scene_names(scenes: Sequence[Path | str]) -> list[str]:
    """Unique, file-name-safe names: the file stem, made unique with its folder or a number."""
    sources = [SceneSource.of(s) for s in scenes]
    stems = [_safe(s.stem) if s.remote else s.stem for s in sources]
    names: list[str] = []
    for source, stem in zip(sources, stems):
        parent = _safe(source.parent_name) if source.remote else source.parent_name
        name = stem if stems.count(stem) == 1 or not parent else f"{parent}-{stem}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _safe(name: str) -> str:
    """A name usable as a file name: URL names may hold characters a file system refuses."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name)


def plan_batch(
    scenes: Sequence[Path | str],
    out_dir: Path,
    *,
    read: ReadOptions,
    image_size: int,
    training_extent_m: float | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> list[BatchScene]:
    """Check every scene, count its chips and pick its output (no pixel is read)."""
    from rsgeo.scene import Scene
    from rsgeo.stretch import Stretch

    if not out_dir.is_dir():
        raise OptionError(f"output folder {out_dir} does not exist; create it first (mkdir -p {out_dir})")
    # The grid needs no stretch; this placeholder spares the scene-wide percentile read.
    no_stretch = Stretch("none", (), ())
    plans = []
    for index, (scene, name) in enumerate(zip(scenes, scene_names(scenes))):
        with Scene(scene, read, stretch=no_stretch) as opened:
            chips = len(opened.grid(image_size, training_extent_m))
        output = out_dir / f"{name}.gpkg"
        done = output.exists() and resume and not overwrite
        if output.exists() and not (resume or overwrite):
            raise OutputExistsError(
                f"{output} already exists; pass {opt('resume')} to keep finished scenes, or {opt('overwrite')} to redo them"
            )
        plans.append(BatchScene(index, scene, output, name, chips, done))
    return plans


def run_batch(
    plans: Sequence[BatchScene],
    encode: Callable[[BatchScene, Callable[[int, int], None], Callable[[], bool]], Path],
    *,
    progress: SceneProgress | None = None,
    in_flight: int = 1,
) -> list[Path]:
    """Run ``encode(scene, progress, cancel)`` for every scene not done yet; the outputs, in order.

    With ``in_flight`` > 1 up to that many scenes run at once, each in a
    thread of this process, started in order: on a cluster the next scene's
    blocks are queued while the current one's last blocks run and its
    GeoPackage is written, so workers do not idle between scenes. The first
    error (or Ctrl-C) stops the others through their ``cancel`` check; their
    journals stay for ``--resume``, and the error is raised once they stopped.
    """
    report = progress or _no_progress
    for plan in plans:
        if plan.done:
            logger.info("%s: %s is complete, skipped", plan.name, plan.output)
            report(plan.index, plan.chips, plan.chips)
    todo = [plan for plan in plans if not plan.done]
    outputs = [plan.output for plan in plans]
    if in_flight <= 1 or len(todo) <= 1:
        for plan in todo:
            encode(plan, functools.partial(report, plan.index), _never)
        return outputs

    lock = threading.Lock()
    stop = threading.Event()

    def scene_progress(index: int, done: int, total: int) -> None:
        with lock:
            report(index, done, total)

    def one(plan: BatchScene) -> Path:
        if stop.is_set():
            raise Cancelled("cancelled before the scene started")
        try:
            return encode(plan, functools.partial(scene_progress, plan.index), stop.is_set)
        except BaseException:
            stop.set()  # here, before this thread takes the next scene
            raise

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="rsgeo-scene") as pool:
        futures = [pool.submit(one, plan) for plan in todo]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C, SIGTERM: the scenes in flight stop at their next check
            stop.set()
            raise
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            stop.set()
            wait(futures)
            errors = [e for e in (f.exception() for f in futures if f.done()) if e is not None]
            raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
    return outputs


def _no_progress(index: int, done: int, total: int) -> None:
    pass


def _never() -> bool:
    return False


def merge_results(
    items: Sequence[tuple[str, Path]], merged: Path, *, crs: Any = None, overwrite: bool = False
) -> Path:
    """Write the result layers of ``items`` (``(scene name, result)``) into one GeoPackage.

    Every layer gets a ``scene`` column first; tiles keep their ids (unique
    per scene, so ``(scene, tile_id)`` is the key). Layers are in ``crs``,
    else the scenes' common CRS, else EPSG:4326 (vertices reprojected).
    Styles are the first scene's. Embeddings stay in the per-scene files,
    listed in the ``rsgeo_scenes`` table.
    """
    from rsgeo.gpkg import check_output
    from rsgeo.locks import OutputLock
    from rsgeo.resultcheck import check_result

    check_output(merged, overwrite=overwrite)
    if not items:
        raise OptionError("nothing to merge: no scene was given")
    refuse_merge_into_inputs(merged, [path for _, path in items])
    lock = OutputLock(merged, command="batch merge")
    lock.acquire()
    try:
        metas = [check_result(path) for _, path in items]
        return _merge_checked(items, metas, merged, crs=crs)
    finally:
        lock.release()


def refuse_merge_into_inputs(merged: Path, inputs: Sequence[Path | str]) -> None:
    """Refuse a merge target that is one of the files it merges or the batch reads (same file, any spelling)."""
    from rsgeo.preflight import same_file

    for path in inputs:
        if not is_remote(path) and same_file(merged, path):
            raise OptionError(
                f"{opt('merge')} {merged} is {Path(path).name}, one of the batch's own files; merging into it would "
                f"replace it: choose another {opt('merge')} path"
            )


def common_crs(crss: Sequence[Any], crs: Any = None) -> Any:
    """The one CRS layers of many scenes are written in: ``crs`` if given, else the scenes' CRS
    if they share one, else EPSG:4326 (a ``pyproj.CRS``; the merged file and archive answers alike)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if crs is not None:
        try:
            return CRS.from_user_input(crs)
        except CRSError as exc:
            raise OptionError(f"{crs!r} is not a CRS pyproj knows ({exc}); give one such as EPSG:4326") from None
    first = CRS.from_user_input(crss[0]) if crss else CRS.from_epsg(4326)
    return first if all(CRS.from_user_input(c) == first for c in crss) else CRS.from_epsg(4326)


def _merge_checked(
    items: Sequence[tuple[str, Path]], metas: list[dict[str, Any]], merged: Path, *, crs: Any = None
) -> Path:
    import pandas as pd
    import pyogrio
    from pyproj import CRS

    from rsgeo.gpkg import atomic_output, write_layer

    layers = list(metas[0].get("layers", {}))
    crss = [CRS.from_wkt(m["grid"]["crs"]) for m in metas]
    target = common_crs(crss, crs)
    for (name, path), meta in zip(items, metas):
        if list(meta.get("layers", {})) != layers:
            raise OptionError(f"{path} has layers {list(meta.get('layers', {}))}, not {layers}: merge results of one batch")

    def frames(layer: str) -> Any:
        for name, path in items:
            gdf = pyogrio.read_dataframe(path, layer=layer)
            gdf.insert(0, "scene", name)
            yield gdf.to_crs(target) if gdf.crs is not None and CRS(gdf.crs) != target else gdf

    with atomic_output(merged) as tmp:
        for layer in layers:
            first = items[0][1]

            def empty(layer: str = layer, first: Path = first) -> Any:
                gdf = pyogrio.read_dataframe(first, layer=layer, max_features=0)
                gdf.insert(0, "scene", pd.Series([], dtype=str))
                return gdf.set_crs(target, allow_override=True)

            n = write_layer(tmp, layer, frames(layer), crs=target, empty=empty)
            logger.info("merged layer %s: %d features", layer, n)
        table = pd.DataFrame(
            {
                "scene": [name for name, _ in items],
                "source": [m["scene"]["path"] for m in metas],
                "result": [str(path.resolve()) for _, path in items],
                "crs": [c.to_string() for c in crss],
                "tiles": [_count(path) for _, path in items],
            }
        )
        pyogrio.write_dataframe(table, tmp, layer=SCENES_TABLE, driver="GPKG")
        _copy_styles(items[0][1], tmp, layers)
    return merged


def _count(path: Path) -> int:
    from rsgeo.gpkg import EMBEDDINGS_TABLE

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute(f"SELECT count(*) FROM {EMBEDDINGS_TABLE}").fetchone()[0])


def _copy_styles(source: Path, target: Path, layers: Sequence[str]) -> None:
    """The ``layer_styles`` table (its own DDL and registration) and the styles of ``layers``."""
    from rsgeo.gpkg import STYLES_TABLE

    db = sqlite3.connect(target)
    try:
        with db:
            db.execute("ATTACH DATABASE ? AS src", (str(source),))
            (ddl,) = db.execute("SELECT sql FROM src.sqlite_master WHERE name = ?", (STYLES_TABLE,)).fetchone()
            db.execute(ddl)
            db.execute("INSERT INTO gpkg_contents SELECT * FROM src.gpkg_contents WHERE table_name = ?", (STYLES_TABLE,))
            cols = [r[1] for r in db.execute(f"PRAGMA src.table_info({STYLES_TABLE})") if r[1] != "id"]
            marks = ",".join("?" * len(layers))
            db.execute(
                f"INSERT INTO main.{STYLES_TABLE} ({', '.join(cols)}) SELECT {', '.join(cols)} "
                f"FROM src.{STYLES_TABLE} WHERE f_table_name IN ({marks}) ORDER BY id",
                list(layers),
            )
        db.execute("DETACH DATABASE src")
    finally:
        db.close()


def scenes_in_flight(asked: int | None, *, cluster: str | None) -> int:
    """How many scenes run at once: one without a cluster, ``asked`` (default 2) on one."""
    if asked is None:
        return SCENES_IN_FLIGHT if cluster is not None else 1
    if asked < 1:
        raise OptionError(f"{opt('scenes_in_flight')} takes a whole number of scenes, 1 or more, got {asked}")
    if asked > 1 and cluster is None:
        raise OptionError(
            f"{opt('scenes_in_flight')} needs {opt('cluster')}: on one machine the scenes run one after another "
            f"(add {opt('cluster', 'local')}, or drop {opt('scenes_in_flight')})"
        )
    return asked


@dataclass(frozen=True)
class BatchJob:
    """Everything a batch asks, as a value: scenes, where results go, the questions and how to run.

    No questions (no classes, no texts) only encodes. With classes the land
    cover is written and texts are then answered from the embeddings just
    stored (no second pass over the pixels); texts alone make query layers.
    """

    output_dir: Path
    inputs: tuple[str | Path, ...] = ()
    scene_lists: tuple[str | Path, ...] = ()
    classes: tuple[str, ...] | None = None
    class_set: str | None = None
    templates: tuple[str, ...] | None = None
    lang: str | None = None
    layer: str = LANDCOVER_LAYER
    texts: tuple[str, ...] = ()
    top_k: int | None = None
    threshold: float | None = None
    merge: Path | None = None
    merge_crs: str | None = None
    scenes_in_flight: int | None = None
    read: ReadOptions = ReadOptions()
    options: RunOptions = RunOptions()


class Batch:
    """A checked, planned batch (:meth:`plan`), then run (:meth:`run`).

    Planning checks every option and every scene and counts the chips, before
    any pixel is encoded; :attr:`scenes` then says what will run (for progress
    displays).
    """

    def __init__(self, job: BatchJob, scenes: list[BatchScene], in_flight: int) -> None:
        self.job = job
        self.scenes = scenes
        self.in_flight = in_flight

    @classmethod
    def plan(cls, job: BatchJob) -> Batch:
        from rsgeo.gpkg import check_output

        if job.merge is not None:
            check_output(job.merge, overwrite=job.options.overwrite)
        in_flight = scenes_in_flight(job.scenes_in_flight, cluster=job.options.cluster)
        if not job.inputs and not job.scene_lists:
            raise OptionError(f"give the scenes: files, patterns, folders or URLs, or {opt('scene_list', 'FILE')}")
        scenes = expand_inputs(job.inputs, lists=job.scene_lists)
        # One model in this process for every scene (texts, identity); cluster workers load their own.
        options = job.options
        encoder = options.load_encoder(options.model or _default_model())
        job = dataclasses.replace(job, options=dataclasses.replace(options, encoder=encoder))
        plans = plan_batch(scenes, job.output_dir, read=job.read, image_size=encoder.image_spec.size,
                           training_extent_m=encoder.training_extent_m, overwrite=options.overwrite, resume=options.resume)
        if job.merge is not None:  # before any encoding: the merge would replace one of these
            refuse_merge_into_inputs(job.merge, [*(p.output for p in plans), *(p.scene for p in plans)])
        return cls(job, plans, in_flight)

    def _encode(self, plan: BatchScene, progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> Path:
        from rsgeo.api import classify, embed, query

        job = self.job
        options = job.options
        # On a cluster, earlier scenes' blocks go first while scenes overlap.
        if options.cluster is not None:
            options = dataclasses.replace(options, cluster_priority=-plan.index)
        if job.classes is not None or job.class_set is not None:
            out = classify(plan.scene, plan.output, classes=job.classes, class_set=job.class_set, templates=job.templates,
                           lang=job.lang, layer=job.layer, read=job.read, options=options, progress=progress,
                           cancel=cancel, command="batch classify")
            if job.texts:  # answered from the embeddings just stored: no second pass over the pixels
                query(out, None, texts=job.texts, top_k=job.top_k, threshold=job.threshold, options=options,
                      command="batch query")
            return out
        if job.texts:
            return query(plan.scene, plan.output, texts=job.texts, top_k=job.top_k, threshold=job.threshold,
                         read=job.read, options=options, progress=progress, cancel=cancel, command="batch query")
        return embed(plan.scene, plan.output, read=job.read, options=options, progress=progress, cancel=cancel,
                     command="batch embed")

    def run(self, *, progress: SceneProgress | None = None) -> list[Path]:
        """Encode (and answer) every scene not done yet, then merge if asked; the per-scene outputs."""
        job = self.job
        if job.options.cluster is not None:
            from rsgeo.cluster import session

            with session(job.options.cluster):
                outputs = run_batch(self.scenes, self._encode, progress=progress, in_flight=self.in_flight)
        else:
            outputs = run_batch(self.scenes, self._encode, progress=progress)
        if job.merge is not None:
            merge_results([(p.name, o) for p, o in zip(self.scenes, outputs)], job.merge, crs=job.merge_crs,
                          overwrite=job.options.overwrite)
        return outputs


def _default_model() -> str:
    from rsgeo.definitions.models import DEFAULT_MODEL

    return DEFAULT_MODEL
