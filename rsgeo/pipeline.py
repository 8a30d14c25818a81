"""Scene → chips → embeddings → layers: the ``embed``/``classify``/``query`` runs.

A run either encodes a scene (the image encoder, streaming, resumable through
a journal) or opens a result GeoPackage whose stored embeddings answer the
questions (only the text encoder runs). Either way the answers come from the
same code (:mod:`rsgeo.questions`, :mod:`rsgeo.answers`), and the output is
written atomically. This module only orchestrates: reading and encoding is
:mod:`rsgeo.encoding`, the metadata :mod:`rsgeo.metadata`, the file
:mod:`rsgeo.gpkg`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsgeo.answers import LayerPlan, tiles_plan
from rsgeo.definitions import schema
from rsgeo.definitions.models import DEFAULT_MODEL, canonical_model_id
from rsgeo.encoders.base import Encoder
from rsgeo.encoding import encoded_batches
from rsgeo.errors import OptionError, ResultError, SceneError, opt
from rsgeo.gpkg import (
    atomic_output,
    check_output,
    connect,
    copy_journal_embeddings,
    ensure_rsgeo_tables,
    is_geopackage,
    set_metadata,
    set_style,
    use_large_pages,
    write_layer,
)
from rsgeo.grid import ChipGrid
from rsgeo.journal import Journal, journal_path
from rsgeo.locks import IN_PLACE_WAIT_S, OutputLock
from rsgeo.metadata import (
    as_stored,
    embeddings_record,
    grid_from_metadata,
    grid_record,
    reading_metadata,
    result_metadata,
    scene_metadata,
    stored_model,
)
from rsgeo.options import CancelCheck, ProgressCallback, RunOptions
from rsgeo.preflight import check_questions, looks_like_result, refuse_output_is_input, same_file
from rsgeo.questions import Question
from rsgeo.resultcheck import open_checked
from rsgeo.scene import ReadOptions, Scene
from rsgeo.sources import SceneSource, content_sha256, identify
from rsgeo.store import GpkgEmbeddings
from rsgeo.stretch import Stretch

logger = logging.getLogger(__name__)

__all__ = ["CancelCheck", "ProgressCallback", "RunOptions", "run"]


def run(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    questions: Sequence[Question] | None,
    *,
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    command: str = "",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Encode (or open) ``source`` and write the layers ``questions`` plans.

    ``source`` is a scene (a local file, or a GDAL virtual path or URL such as
    ``/vsis3/bucket/x.tif``: see :mod:`rsgeo.sources`) or a result GeoPackage.
    """
    scene = SceneSource.of(source)
    if not scene.remote and (is_geopackage(scene.local) or (questions is not None and looks_like_result(scene.local))):
        if questions is None:
            raise OptionError(f"{scene.name} is already encoded; embed takes a scene, not a GeoPackage")
        return _answer_stored(scene.local, output, questions, options=options, command=command)
    if output is None:
        raise OptionError(f"give the output GeoPackage with {opt('output', 'OUT.gpkg')}")
    check_output(Path(output), overwrite=options.overwrite)
    refuse_output_is_input(scene, Path(output))
    with OutputLock(Path(output), command=command):  # one run at a time writes an output
        return _encode_scene(
            scene, Path(output), questions, read=read, options=options, command=command, progress=progress,
            cancel=cancel,
        )


def _encode_scene(
    source: SceneSource,
    output: Path,
    questions: Sequence[Question] | None,
    *,
    read: ReadOptions,
    options: RunOptions,
    command: str,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> Path:
    check_output(output, overwrite=options.overwrite)
    with Scene(source, read) as scene:
        encoder = options.load_encoder(DEFAULT_MODEL)
        grid = scene.grid(encoder.image_spec.size)
        check_questions(questions, grid)
        read_meta = reading_metadata(scene.bands, scene.stretch, min_valid=read.min_valid, gsd=read.gsd)
        if scene.palette is not None:
            read_meta["palette"] = "rgb"  # the indices were read as their colour table's RGB
        grid_meta = grid_record(grid, read.gsd).to_dict()
        scene_id = identify(source, scene.source)
        identity = {
            "model": {"model_id": encoder.identity.model_id, "weights_sha256": encoder.identity.weights_sha256},
            "image_spec": dataclasses.asdict(encoder.image_spec),
            "grid": grid_meta,
            "read": read_meta,
            "scene": scene_id.journal_key(),
        }
        scene_meta = scene_metadata(scene_id.metadata(), scene.source)
        stretch = scene.stretch
    # As stored (tuples become lists): a refused resume then names the field that really differs.
    journal = Journal(
        journal_path(output), as_stored(identity), dim=encoder.embedding_dim, dtype=options.embedding_dtype,
        resume=options.resume,
    )
    try:
        _encode_chips(source, read, stretch, grid, encoder, journal, options, progress, cancel)
        if journal.count() == 0:
            journal.delete()
            raise SceneError(
                f"no chip of {source.name} has at least {read.min_valid:.0%} valid pixels (all nodata, "
                f"or a wrong nodata value); check the scene's nodata value or mask, or lower {opt('min_valid')}"
            )
        scene_meta["sha256"] = content_sha256(source)  # None for a remote scene: its fingerprint identifies it
        metadata = result_metadata(
            command=command, encoder=encoder, scene=scene_meta, grid=grid_meta, read=read_meta,
            embedding_dtype=options.embedding_dtype,
        )
        plans = [tiles_plan(grid, journal)]
        for question in questions or ():
            plans += question.plans(encoder, grid, journal, [schema.TILES_LAYER])
        with atomic_output(output) as tmp:
            _write_plans(tmp, plans, grid)
            use_large_pages(tmp)
            with connect(tmp) as db:
                ensure_rsgeo_tables(db)
                copy_journal_embeddings(db, journal.path)
                for plan in plans:
                    set_style(db, plan.name, plan.style())
                metadata[schema.KEY_LAYERS] = {p.name: p.meta for p in plans}
                set_metadata(db, metadata)
    except BaseException:
        journal.close()
        raise
    journal.delete()
    logger.info("wrote %s", output)
    return output


def _encode_chips(
    source: SceneSource,
    read: ReadOptions,
    stretch: Stretch,
    grid: ChipGrid,
    encoder: Encoder,
    journal: Journal,
    options: RunOptions,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> None:
    if options.cluster is not None:  # the same chips and encoder, run by cluster workers
        from rsgeo.cluster import encode_on_cluster

        encode_on_cluster(source.path, read, stretch, grid, encoder, journal, options, progress, cancel)
        return
    total = len(grid)
    done_ids = journal.done_ids()
    stored = journal.count()
    done = encoded = 0
    if progress:
        progress(0, total)
    batches = encoded_batches(
        source.path, read, stretch, grid, encoder, batch_size=options.batch_size, workers=options.workers,
        skip=done_ids, cancel=cancel,
    )
    for batch, embeddings in batches:
        journal.add(batch.tile_ids, batch.valid_fraction, embeddings, nodata=batch.nodata)
        encoded += len(batch.tile_ids)
        done += batch.scanned
        if progress:
            progress(done, total)
    known_nodata = len(done_ids) - stored
    logger.info(
        "encoded %d chips in this run (%d were already in the journal%s)", encoded, stored,
        f"; {known_nodata} nodata chips found by the earlier run were not read again" if known_nodata else "",
    )


def _write_plans(path: Path, plans: Sequence[LayerPlan], grid: ChipGrid) -> None:
    for plan in plans:
        n = write_layer(path, plan.name, plan.frames(), crs=grid.crs, empty=plan.empty)
        logger.info("layer %s: %d features", plan.name, n)


def _answer_stored(
    source: Path,
    output: str | os.PathLike[str] | None,
    questions: Sequence[Question],
    *,
    options: RunOptions,
    command: str,
) -> Path:
    out = Path(output) if output is not None else source
    in_place = same_file(out, source)
    check_output(out, overwrite=options.overwrite, in_place=in_place)
    # In place, a run waits for the one ahead and reads the result after it: its layers are kept.
    with OutputLock(out, wait=IN_PLACE_WAIT_S if in_place else 0.0, command=command):
        check_output(out, overwrite=options.overwrite, in_place=in_place)
        with open_checked(source) as (db, metadata):  # one file, checked, read whole even if replaced meanwhile
            return _answer_checked(source, db, metadata, out, questions, options=options)


def _answer_checked(
    source: Path,
    db: sqlite3.Connection,
    metadata: dict[str, Any],
    out: Path,
    questions: Sequence[Question],
    *,
    options: RunOptions,
) -> Path:
    stored = stored_model(metadata, source.name)
    requested = options.encoder.identity.model_id if options.encoder is not None else options.model
    if requested is not None and canonical_model_id(requested) != stored.get("model_id"):
        raise ResultError(
            f"{source.name} was encoded with model {stored.get('model_id')!r}, not {requested!r}; "
            f"leave out {opt('model')} (or pass {opt('model', stored.get('model_id'))}) to use the stored embeddings"
        )
    encoder = options.load_encoder(stored.get("model_id") or DEFAULT_MODEL)
    if encoder.identity.weights_sha256 != stored.get("weights_sha256") and stored.get("weights_sha256"):
        raise ResultError(
            f"{source.name} was encoded with other weights of {stored.get('model_id')} "
            f"(sha256 {stored['weights_sha256'][:12]}…, now {str(encoder.identity.weights_sha256)[:12]}…); "
            f"pass the same {opt('checkpoint')}/weights, or encode the scene again"
        )
    grid = grid_from_metadata(metadata)
    emb = embeddings_record(metadata)
    store = GpkgEmbeddings(source, dim=emb.dim, dtype=emb.dtype, db=db)
    taken = list(metadata.get(schema.KEY_LAYERS, {}))
    plans: list[LayerPlan] = []
    for question in questions:
        plans += question.plans(encoder, grid, store, taken)
    with atomic_output(out, start_from=db) as tmp:
        _write_plans(tmp, plans, grid)
        with connect(tmp) as out_db:
            ensure_rsgeo_tables(out_db)
            for plan in plans:
                set_style(out_db, plan.name, plan.style())
            new = {p.name.casefold() for p in plans}  # SQLite's table names ignore case: LANDCOVER replaced landcover
            layers = {k: v for k, v in dict(metadata.get(schema.KEY_LAYERS, {})).items() if k.casefold() not in new}
            layers.update({p.name: p.meta for p in plans})
            set_metadata(out_db, {schema.KEY_LAYERS: layers})
    return out
