"""Scene → chips → embeddings → layers: the ``embed``/``classify``/``query`` runs.

A run either encodes a scene (the image encoder, streaming, resumable through
a journal) or opens a result GeoPackage whose stored embeddings answer the
question (only the text encoder runs). Either way the answers come from the
same code in :mod:`rsgeo.answers`, and the output is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Container, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import LayerPlan, tiles_plan
from rsgeo.encoders.base import Encoder
from rsgeo.encoders.loading import DEFAULT_MODEL, canonical_model_id, load_encoder
from rsgeo.errors import Cancelled, OptionError, ResultError, SceneError
from rsgeo.gpkg import (
    EMBEDDINGS_TABLE,
    SCHEMA_VERSION,
    atomic_output,
    check_output,
    connect,
    ensure_rsgeo_tables,
    is_geopackage,
    read_metadata,
    set_metadata,
    set_style,
    write_layer,
)
from rsgeo.grid import ChipGrid, ChipSpec
from rsgeo.journal import Journal, embedding_dtype, journal_path
from rsgeo.reader import ChipBatch, ChipReader, empty_chips
from rsgeo.scene import ReadOptions, Scene
from rsgeo.sources import SceneSource, content_sha256, identify
from rsgeo.store import EmbeddingSource, GpkgEmbeddings

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]
#: Builds the result layers once the embeddings exist: (encoder, grid, store, taken layer names).
Questions = Callable[[Encoder, ChipGrid, EmbeddingSource, list[str]], list[LayerPlan]]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How the model runs; none of it changes the results (but precision)."""

    model: str | None = None
    encoder: Encoder | None = None
    device: str | None = None
    precision: str = "fp32"
    batch_size: int | None = None
    workers: int | None = None
    checkpoint: str | None = None
    cache_dir: str | None = None
    embedding_dtype: str = "float32"
    resume: bool = False
    overwrite: bool = False
    #: ``local``, ``local:N`` or a Dask scheduler address; ``None`` runs here (see :mod:`rsgeo.cluster`).
    cluster: str | None = None
    #: Dask priority of this run's blocks on the cluster (higher runs first): a batch gives
    #: earlier scenes precedence while several scenes are in flight.
    cluster_priority: int = 0

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise OptionError(f"unknown precision {self.precision!r}; use fp32, bf16 or fp16")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"--workers must be at least 1, got {self.workers}")
        embedding_dtype(self.embedding_dtype)
        if self.cluster is not None:
            from rsgeo.cluster import parse_cluster

            parse_cluster(self.cluster)


def default_batch_size(device: str) -> int:
    return 256 if device.startswith("cuda") else 32


def _version() -> str:
    from rsgeo import __version__

    return __version__


def grid_metadata(grid: ChipGrid, gsd: float | None) -> dict[str, Any]:
    return {
        "width": grid.width,
        "height": grid.height,
        "transform": list(grid.transform)[:6],
        "crs": grid.crs.to_wkt() if grid.crs is not None else None,
        "size_px": grid.spec.size_px,
        "stride_px": grid.spec.stride_px,
        "n_rows": grid.n_rows,
        "n_cols": grid.n_cols,
        "gsd": gsd,
    }


def grid_from_metadata(meta: dict[str, Any]) -> ChipGrid:
    from affine import Affine
    from rasterio.crs import CRS

    g = meta["grid"]
    crs = CRS.from_wkt(g["crs"]) if g.get("crs") else None
    return ChipGrid(g["width"], g["height"], Affine(*g["transform"]), ChipSpec(g["size_px"], g["stride_px"]), crs=crs)


def model_metadata(encoder: Encoder) -> dict[str, Any]:
    return {
        "model_id": encoder.identity.model_id,
        "weights_sha256": encoder.identity.weights_sha256,
        "embedding_dim": encoder.embedding_dim,
        "logit_scale": encoder.logit_scale,
        "image_spec": dataclasses.asdict(encoder.image_spec),
        "languages": list(encoder.languages) if encoder.languages else None,
    }


def _load(run: RunOptions, default: str | None = DEFAULT_MODEL) -> Encoder:
    if run.encoder is not None:
        return run.encoder
    return load_encoder(
        run.model or default or DEFAULT_MODEL,
        device=run.device,
        precision=run.precision,
        checkpoint=run.checkpoint,
        cache_dir=run.cache_dir,
    )


def run(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    questions: Questions | None,
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
    if not scene.remote and is_geopackage(scene.local):
        if questions is None:
            raise OptionError(f"{scene.name} is already encoded; embed takes a scene, not a GeoPackage")
        return _answer_stored(scene.local, output, questions, options=options, command=command)
    if output is None:
        raise OptionError("give the output GeoPackage with -o OUT.gpkg")
    return _encode_scene(
        scene, Path(output), questions, read=read, options=options, command=command, progress=progress, cancel=cancel
    )


def _encode_scene(
    source: SceneSource,
    output: Path,
    questions: Questions | None,
    *,
    read: ReadOptions,
    options: RunOptions,
    command: str,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> Path:
    check_output(output, overwrite=options.overwrite)
    with Scene(source, read) as scene:
        encoder = _load(options)
        grid = scene.grid(encoder.image_spec.size)
        read_meta = {
            "bands": list(scene.bands),
            "stretch": scene.stretch.to_dict(),
            "min_valid": read.min_valid,
            "gsd": read.gsd,
        }
        grid_meta = grid_metadata(grid, read.gsd)
        src = scene.source
        scene_id = identify(source, src)
        identity = {
            "model": {"model_id": encoder.identity.model_id, "weights_sha256": encoder.identity.weights_sha256},
            "image_spec": dataclasses.asdict(encoder.image_spec),
            "grid": grid_meta,
            "read": read_meta,
            "scene": scene_id.journal_key(),
        }
        scene_meta = {
            **scene_id.metadata(),
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": list(src.dtypes),
            "nodata": src.nodata,
            "crs": src.crs.to_wkt(),
            "transform": list(src.transform)[:6],
        }
        stretch = scene.stretch
    # As stored (tuples become lists): a refused --resume then names the field that really differs.
    identity = json.loads(json.dumps(identity))
    journal = Journal(
        journal_path(output), identity, dim=encoder.embedding_dim, dtype=options.embedding_dtype, resume=options.resume
    )
    try:
        _encode_chips(source, read, stretch, grid, encoder, journal, options, progress, cancel)
        if journal.count() == 0:
            journal.delete()
            raise SceneError(
                f"no chip of {source.name} has at least {read.min_valid:.0%} valid pixels (all nodata, "
                "or a wrong nodata value); check the scene's nodata value or mask, or lower --min-valid"
            )
        scene_meta["sha256"] = content_sha256(source)  # None for a remote scene: its fingerprint identifies it
        metadata = {
            "schema_version": SCHEMA_VERSION,
            "run": {
                "rsgeo_version": _version(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": command,
            },
            "model": model_metadata(encoder),
            "scene": scene_meta,
            "grid": grid_meta,
            "read": read_meta,
            "embeddings": {"table": EMBEDDINGS_TABLE, "dtype": options.embedding_dtype, "dim": encoder.embedding_dim},
        }
        plans = [tiles_plan(grid, journal)]
        if questions is not None:
            plans += questions(encoder, grid, journal, ["tiles"])
        with atomic_output(output) as tmp:
            _write_plans(tmp, plans, grid)
            _use_large_pages(tmp)
            with connect(tmp) as db:
                db.execute("ATTACH DATABASE ? AS journal", (str(journal.path),))
                ensure_rsgeo_tables(db)
                db.execute(
                    f"INSERT INTO {EMBEDDINGS_TABLE} (tile_id, embedding) "
                    "SELECT tile_id, embedding FROM journal.chips ORDER BY tile_id"
                )
                for plan in plans:
                    set_style(db, plan.name, plan.style())
                metadata["layers"] = {p.name: p.meta for p in plans}
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
    stretch: Any,
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


def encoded_batches(
    path: str | os.PathLike[str],
    read: ReadOptions,
    stretch: Any,
    grid: ChipGrid,
    encoder: Encoder,
    *,
    batch_size: int | None,
    workers: int | None,
    skip: Container[int],
    scene_grid: ChipGrid | None = None,
    cancel: CancelCheck | None = None,
) -> Iterator[tuple[ChipBatch, np.ndarray]]:
    """The chips of ``grid`` not in ``skip``, batch by batch, with their embeddings.

    What a single-machine run and a cluster worker's block both do: read with
    :class:`ChipReader` (``batch_size`` chips a batch, the device's default when
    ``None``) and encode every batch at the run's one model batch shape, that of
    ``scene_grid`` (the whole scene's grid when ``grid`` is a block's rows).
    ``cancel`` is checked after each read, before the batch is encoded.
    """
    size = batch_size or default_batch_size(encoder.device)
    reader = ChipReader(
        path, read, stretch, grid, encoder.image_spec, batch_size=size, workers=workers, skip=skip,
        **reader_hooks(encoder),
    )
    shape = model_batch_shape(size, scene_grid or grid)
    for batch in reader:
        if cancel is not None and cancel():
            raise Cancelled("cancelled; rerun with --resume to continue from the chips already encoded")
        yield batch, encode_batch(encoder, batch.pixels, shape)


def model_batch_shape(batch_size: int, grid: ChipGrid) -> int:
    """The one batch size the model runs at for ``grid`` (see :func:`encode_batch`).

    The run's batch size, or the grid's chip count when the scene has fewer
    chips than a batch: a small scene is not padded to a full batch, and every
    run of the scene with the same batch size still uses the same shape.
    """
    return max(1, min(batch_size, len(grid)))


def encode_batch(encoder: Encoder, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """Embeddings of a batch of chips, run by the model at the run's fixed batch shape.

    A partial batch (the last of a scene, of a cluster block, of a resumed
    run) is padded to ``batch_size`` chips and the padding's rows dropped.
    CPU and GPU kernels choose their blocking, and so their summation order,
    by the shape of the input: a chip encoded in a batch of 32 and in a batch
    of 5 can differ in the last bits. At one shape a chip's embedding does not
    depend on the other chips of its batch, so a run resumed part way, or
    split into blocks over cluster workers, stores the very bytes of an
    uninterrupted single-machine run with the same batch size (on the same
    hardware and software). The cost is at most one padded batch per scene or
    block; ``batch_size`` here is :func:`model_batch_shape`.
    """
    n = len(pixels)
    if n == 0:
        return np.zeros((0, encoder.embedding_dim), np.float32)
    if n >= batch_size:
        return encoder.encode_images(pixels)
    channels_first = bool(getattr(encoder, "channels_first", False))
    allocate = getattr(encoder, "empty_batch", None) or empty_chips
    full = allocate(batch_size, pixels.shape[1], channels_first)
    full[:n] = pixels
    full[n:] = 0
    return encoder.encode_images(full)[:n]


def reader_hooks(encoder: Encoder) -> dict[str, Any]:
    """What the reader may tailor to the encoder: the device (reader threads),
    the batch memory layout it eats without a copy, and pinned batch buffers."""
    return {
        "device": encoder.device,
        "channels_first": bool(getattr(encoder, "channels_first", False)),
        "allocate": getattr(encoder, "empty_batch", None),
    }


def _use_large_pages(path: Path) -> None:
    """Rewrite ``path`` with 64 KiB pages before the embeddings go in.

    GDAL creates GeoPackages with 4 KiB pages, on which every 2 KiB embedding
    row would take a page of its own; the layers are small, so this is cheap.
    """
    import sqlite3

    from rsgeo.journal import PAGE_SIZE

    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.execute("VACUUM")
    finally:
        db.close()


def _write_plans(path: Path, plans: Sequence[LayerPlan], grid: ChipGrid) -> None:
    for plan in plans:
        n = write_layer(path, plan.name, plan.frames(), crs=grid.crs, empty=plan.empty)
        logger.info("layer %s: %d features", plan.name, n)


def _answer_stored(
    source: Path, output: str | os.PathLike[str] | None, questions: Questions, *, options: RunOptions, command: str
) -> Path:
    metadata = read_metadata(source)
    stored = metadata.get("model", {})
    requested = options.encoder.identity.model_id if options.encoder is not None else options.model
    if requested is not None and canonical_model_id(requested) != stored.get("model_id"):
        raise ResultError(
            f"{source.name} was encoded with model {stored.get('model_id')!r}, not {requested!r}; "
            f"leave out --model (or pass --model {stored.get('model_id')}) to use the stored embeddings"
        )
    out = Path(output) if output is not None else source
    in_place = out.resolve() == source.resolve()
    check_output(out, overwrite=options.overwrite, in_place=in_place)
    encoder = _load(options, default=stored.get("model_id"))
    if encoder.identity.weights_sha256 != stored.get("weights_sha256") and stored.get("weights_sha256"):
        raise ResultError(
            f"{source.name} was encoded with other weights of {stored.get('model_id')} "
            f"(sha256 {stored['weights_sha256'][:12]}…, now {str(encoder.identity.weights_sha256)[:12]}…); "
            "pass the same --checkpoint/weights, or encode the scene again"
        )
    grid = grid_from_metadata(metadata)
    emb_meta = metadata["embeddings"]
    store = GpkgEmbeddings(source, dim=emb_meta["dim"], dtype=emb_meta["dtype"])
    try:
        taken = list(metadata.get("layers", {}))
        plans = questions(encoder, grid, store, taken)
        with atomic_output(out, start_from=source) as tmp:
            _write_plans(tmp, plans, grid)
            with connect(tmp) as db:
                ensure_rsgeo_tables(db)
                for plan in plans:
                    set_style(db, plan.name, plan.style())
                layers = dict(metadata.get("layers", {}))
                layers.update({p.name: p.meta for p in plans})
                set_metadata(db, {"layers": layers})
    finally:
        store.close()
    return out

