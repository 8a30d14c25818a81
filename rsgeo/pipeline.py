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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsgeo.answers import LayerPlan, tiles_plan
from rsgeo.cells import cells_plan
from rsgeo.definitions import schema
from rsgeo.definitions.schema import RasterRecord
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
    recorded_checkpoint,
    result_metadata,
    scene_metadata,
    stored_model,
)
from rsgeo.options import CancelCheck, ProgressCallback, RunOptions
from rsgeo.preflight import check_questions, looks_like_result, refuse_output_is_input, same_file
from rsgeo.questions import Question
from rsgeo.rasters import as_metadata, previous_rasters, recorded_rasters, remove_stale, update_rasters
from rsgeo.rasters import check_questions as check_raster_questions
from rsgeo.resultcheck import open_checked
from rsgeo.scene import ReadOptions, Scene
from rsgeo.sources import SceneSource, content_sha256, identify
from rsgeo.stac import stac_item_id
from rsgeo.store import GpkgEmbeddings
from rsgeo.stretch import Stretch

if TYPE_CHECKING:
    from rsgeo.encoders.dense import DenseViT
    from rsgeo.patches import PatchSource

logger = logging.getLogger(__name__)

__all__ = ["CancelCheck", "ProgressCallback", "RunOptions", "run"]


def run(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    questions: Sequence[Question] | None,
    *,
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    command: str | Sequence[str] = "",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Encode (or open) ``source`` and write the layers ``questions`` plans.

    ``source`` is a scene (a local file, or a GDAL virtual path or URL such as
    ``/vsis3/bucket/x.tif``: see :mod:`rsgeo.sources`) or a result GeoPackage.
    """
    check_raster_questions(questions, no_rasters=options.no_rasters)
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
    command: str | Sequence[str],
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> Path:
    check_output(output, overwrite=options.overwrite)
    with Scene(source, read) as scene:
        encoder = options.load_encoder(DEFAULT_MODEL)
        dense = _dense_capability(encoder, options, questions)  # refused here, before any chip is read
        grid = scene.grid(encoder.image_spec.size, encoder.training_extent_m)
        check_questions(questions, grid)
        few_tiles = scene.few_tiles_warning(grid)
        read_meta = reading_metadata(scene.bands, scene.stretch, min_valid=read.min_valid, gsd=read.gsd)
        if scene.palette is not None:
            read_meta["palette"] = "rgb"  # the indices were read as their colour table's RGB
        if read.chip_size is None:  # the default chip: the model's training ground extent in this scene's pixels
            read_meta["default_chip"] = {
                "training_extent_m": encoder.training_extent_m, "pixel_size_m": scene.pixel_size_m,
                "size_px": grid.spec.size_px,
            }
        grid_meta = grid_record(grid, read.gsd).to_dict()
        scene_id = identify(source, scene.source, stac_item_id=stac_item_id(source.path))
        identity: dict[str, Any] = {
            "model": {"model_id": encoder.identity.model_id, "weights_sha256": encoder.identity.weights_sha256},
            "image_spec": dataclasses.asdict(encoder.image_spec),
            "grid": grid_meta,
            "read": read_meta,
            "scene": scene_id.journal_key(),
        }
        if dense is not None:
            identity["dense"] = _dense_method()
        scene_meta = scene_metadata(scene_id.metadata(), scene.source)
        stretch = scene.stretch
    # As stored (tuples become lists): a refused resume then names the field that really differs.
    journal = Journal(
        journal_path(output), as_stored(identity), dim=encoder.embedding_dim, dtype=options.embedding_dtype,
        resume=options.resume,
    )
    try:
        if dense is not None:
            journal.keep_patches()
            _encode_dense_chips(source, read, stretch, grid, dense, journal, options, progress, cancel)
        else:
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
            embedding_dtype=options.embedding_dtype, checkpoint=options.checkpoint,
        )
        plans = [tiles_plan(grid, journal), cells_plan(grid, journal)]
        for question in questions or ():
            plans += question.plans(encoder, grid, journal, [schema.TILES_LAYER, schema.CELLS_LAYER])
        previous = previous_rasters(output)
        dense_rasters: dict[str, RasterRecord] = {}
        if dense is not None:
            from rsgeo.dense_run import write_dense_rasters
            from rsgeo.patches import PatchSource

            patch_source = PatchSource(
                journal.path, schema.JOURNAL_PATCHES_TABLE, grid_size=dense.grid_size, dim=dense.embedding_dim
            )
            dense_rasters = _records(write_dense_rasters(
                output, plans, grid, patch_source, resize_mode=encoder.image_spec.resize_mode, method=_dense_method()
            ))
        with atomic_output(output) as tmp:
            _write_plans(tmp, plans, grid)
            use_large_pages(tmp)
            with connect(tmp) as db:
                ensure_rsgeo_tables(db)
                copy_journal_embeddings(db, journal.path)
                if dense is not None and options.keep_patches:
                    from rsgeo.patches import copy_journal_patches, patches_record

                    copy_journal_patches(db, journal.path)
                    metadata[schema.KEY_PATCHES] = patches_record(dense.grid_size, dense.embedding_dim, _dense_method())
                for plan in plans:
                    set_style(db, plan.name, plan.style())
                metadata[schema.KEY_LAYERS] = {p.name: p.meta for p in plans}
                rasters = update_rasters(output, plans, grid, previous={}, write=not options.no_rasters)
                rasters.update(dense_rasters)
                metadata[schema.KEY_RASTERS] = as_metadata(rasters)
                set_metadata(db, metadata)
        remove_stale(output, previous, rasters)
    except BaseException:
        journal.close()
        raise
    journal.delete()
    if few_tiles is not None:
        logger.warning(few_tiles)
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


def _dense_method() -> str:
    from rsgeo.encoders.dense import METHOD

    return METHOD


def _dense_capability(encoder: Encoder, options: RunOptions, questions: Sequence[Question] | None) -> DenseViT | None:
    """The encoder's dense capability for a ``--dense`` run (one line when it has none), else ``None``."""
    if not options.dense:
        return None
    if not questions:
        raise OptionError(f"{opt('dense')} maps the answers of classify and query; embed has none")
    from rsgeo.encoders.dense import dense_encoder

    return dense_encoder(encoder)


def _encode_dense_chips(
    source: SceneSource,
    read: ReadOptions,
    stretch: Stretch,
    grid: ChipGrid,
    dense: DenseViT,
    journal: Journal,
    options: RunOptions,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> None:
    from rsgeo.encoding import encoded_dense_batches

    total, done = len(grid), 0
    if progress:
        progress(0, total)
    batches = encoded_dense_batches(
        source.path, read, stretch, grid, dense, batch_size=options.batch_size, workers=options.workers,
        skip=journal.done_ids(), cancel=cancel,
    )
    for batch, out in batches:
        journal.add(batch.tile_ids, batch.valid_fraction, out.embeddings, nodata=batch.nodata, patches=out.patches)
        done += batch.scanned
        if progress:
            progress(done, total)


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
    command: str | Sequence[str],
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
    options = _with_stored_checkpoint(options, stored, source.name)
    encoder = options.load_encoder(stored.get("model_id") or DEFAULT_MODEL)
    if encoder.identity.weights_sha256 != stored.get("weights_sha256") and stored.get("weights_sha256"):
        raise ResultError(
            f"{source.name} was encoded with other weights of {stored.get('model_id')} "
            f"(sha256 {stored['weights_sha256'][:12]}…, now {str(encoder.identity.weights_sha256)[:12]}…); "
            f"pass the same {opt('checkpoint')}/weights, or encode the scene again"
        )
    grid = grid_from_metadata(metadata)
    emb = embeddings_record(metadata)
    patch_source = _stored_patches(source, metadata) if options.dense else None
    store = GpkgEmbeddings(source, dim=emb.dim, dtype=emb.dtype, db=db)
    taken = list(metadata.get(schema.KEY_LAYERS, {}))
    plans: list[LayerPlan] = [] if schema.CELLS_LAYER in taken else [cells_plan(grid, store)]  # older results
    for question in questions:
        plans += question.plans(encoder, grid, store, taken)
    dense_rasters: dict[str, RasterRecord] = {}
    if patch_source is not None:
        from rsgeo.dense_run import write_dense_rasters

        dense_rasters = _records(write_dense_rasters(
            out, plans, grid, patch_source, resize_mode=encoder.image_spec.resize_mode,
            method=str(metadata[schema.KEY_PATCHES].get("method", "")),
        ))
    _add_layers(db, out, plans, grid, metadata, in_place=same_file(out, source), rasters=not options.no_rasters,
                extra_rasters=dense_rasters)
    return out


def _with_stored_checkpoint(options: RunOptions, stored: dict[str, Any], name: str) -> RunOptions:
    """``options`` with the checkpoint the result recorded, when none is given (and no encoder)."""
    if options.checkpoint is not None or options.encoder is not None:
        return options
    path = recorded_checkpoint(stored, name)
    if path is None:
        return options
    logger.info("%s: loading the recorded checkpoint %s", name, path)
    return dataclasses.replace(options, checkpoint=path)


def write_stored_plans(source: Path, output: str | os.PathLike[str] | None, plans: Sequence[LayerPlan], *,
                       overwrite: bool = False, rasters: bool = True, command: str | Sequence[str] = "") -> Path:
    """Add ``plans``' layers to a result (in place, or to a copy at ``output``), atomically.

    For answers that need no encoder at all (``rsgeo refine``): the same
    writing path as :func:`run` on a stored result, without loading a model.
    """
    out = Path(output) if output is not None else source
    in_place = same_file(out, source)
    check_output(out, overwrite=overwrite, in_place=in_place)
    with OutputLock(out, wait=IN_PLACE_WAIT_S if in_place else 0.0, command=command):
        check_output(out, overwrite=overwrite, in_place=in_place)
        with open_checked(source) as (db, metadata):
            _add_layers(db, out, plans, grid_from_metadata(metadata), metadata, in_place=in_place, rasters=rasters)
    logger.info("wrote %s", out)
    return out


def _add_layers(source: Path | sqlite3.Connection, out: Path, plans: Sequence[LayerPlan], grid: ChipGrid, metadata: dict[str, Any], *,
                in_place: bool, rasters: bool = True, extra_rasters: Mapping[str, RasterRecord] | None = None) -> None:
    """Write ``out`` atomically: ``source`` plus ``plans``' layers, their styles, their rasters (unless
    ``rasters`` is false; ``extra_rasters``, already written, are listed too), and their records in the metadata."""
    previous = recorded_rasters(metadata) if in_place else {}  # a copy elsewhere starts without the source's
    replaced = previous if in_place else previous_rasters(out)
    with atomic_output(out, start_from=source) as tmp:
        _write_plans(tmp, plans, grid)
        with connect(tmp) as db:
            ensure_rsgeo_tables(db)
            for plan in plans:
                set_style(db, plan.name, plan.style())
            new = {p.name.casefold() for p in plans}  # SQLite's table names ignore case: LANDCOVER replaced landcover
            layers = {k: v for k, v in dict(metadata.get(schema.KEY_LAYERS, {})).items() if k.casefold() not in new}
            layers.update({p.name: p.meta for p in plans})
            written = update_rasters(out, plans, grid, previous=previous, write=rasters)
            written.update(extra_rasters or {})
            set_metadata(db, {schema.KEY_LAYERS: layers, schema.KEY_RASTERS: as_metadata(written)})
    remove_stale(out, replaced, written)


def _records(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, RasterRecord]:
    return {name: RasterRecord.from_dict(name, d) for name, d in raw.items()}


def _stored_patches(source: Path, metadata: dict[str, object]) -> PatchSource:
    """The patch embeddings a ``--keep-patches`` run stored in ``source`` (one line when there are none)."""
    from rsgeo.patches import PatchSource

    record = metadata.get(schema.KEY_PATCHES)
    if not isinstance(record, dict):
        raise ResultError(
            f"{source.name} holds no patch embeddings, so {opt('dense')} cannot map it; encode the scene again "
            f"with {opt('dense')} {opt('keep_patches')}"
        )
    return PatchSource(source, str(record["table"]), grid_size=int(record["grid"]), dim=int(record["dim"]))
