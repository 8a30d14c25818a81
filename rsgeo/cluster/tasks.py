"""What runs on a cluster worker: one block of chips → its embeddings.

Each worker process keeps the encoders it has loaded (keyed by the model and
how it runs), so a model loads once per process, not once per task. A task
carries everything else it needs (scene path, read options, the scene-wide
stretch computed by the driver, the grid), so any worker can run any task
and a retried task gives the same chips.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from rsgeo.cluster.blocks import Block, RowsGrid
from rsgeo.encoders.base import Encoder
from rsgeo.grid import ChipGrid
from rsgeo.scene import ReadOptions
from rsgeo.stretch import Stretch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """How a worker builds its encoder (``--model``, ``--device`` ...).

    ``threads`` sets torch's CPU threads in the worker process (local
    clusters share the machine's cores between their workers); ``None`` keeps
    the process's setting.
    """

    model: str
    device: str | None = None
    precision: str = "fp32"
    checkpoint: str | None = None
    cache_dir: str | None = None
    threads: int | None = None
    engine: str = "auto"


@dataclass(frozen=True)
class BlockTask:
    """One block of one scene, with everything a worker needs to encode it."""

    scene: str
    read: ReadOptions
    stretch: Stretch
    grid: ChipGrid
    block: Block
    skip: tuple[int, ...]  # tile ids of the block already in the journal
    model: ModelSpec
    batch_size: int | None = None
    reader_threads: int | None = None


@dataclass
class BlockResult:
    """Embeddings of the kept chips of a block (ids in reading order), and the ids of its nodata chips."""

    block: Block
    tile_ids: np.ndarray  # int64 (N,), ids of the full grid
    valid_fraction: np.ndarray  # float32 (N,)
    embeddings: np.ndarray  # float32 (N, D)
    nodata: np.ndarray  # int64, ids of the full grid read and found below min_valid
    model_id: str
    weights_sha256: str | None
    worker: str  # host:pid
    seconds: float


_ENCODERS: dict[ModelSpec, Encoder] = {}
_LOCK = threading.Lock()


def encoder_for(spec: ModelSpec) -> Encoder:
    """This process's encoder for ``spec``, loaded on first use."""
    with _LOCK:
        encoder = _ENCODERS.get(spec)
        if encoder is None:
            from rsgeo.zoo import load_encoder

            start = time.perf_counter()
            encoder = load_encoder(
                spec.model, device=spec.device, precision=spec.precision,
                checkpoint=spec.checkpoint, cache_dir=spec.cache_dir, engine=spec.engine,
            )
            if spec.threads is not None and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(spec.threads)
            _ENCODERS[spec] = encoder
            logger.info("worker %s loaded %s on %s in %.1f s", worker_name(), spec.model, encoder.device,
                        time.perf_counter() - start)
        return encoder


def worker_batch_size(spec: ModelSpec) -> int:
    """The batch size this worker runs ``spec`` at when none is given (GPU 256, CPU 32).

    Loads the model (once per process), so the driver's probe also warms every
    worker before the first block.
    """
    from rsgeo.encoding import default_batch_size

    return default_batch_size(encoder_for(spec).device)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def encode_block(task: BlockTask) -> BlockResult:
    """Read and encode the chips of ``task.block`` that are not in ``task.skip``."""
    from rsgeo.encoding import encoded_batches

    start = time.perf_counter()
    encoder = encoder_for(task.model)
    grid = RowsGrid.of(task.grid, task.block)
    offset = task.block.offset  # the id of local tile 0 of the block's rows
    skip = frozenset(t - offset for t in (*task.skip, *task.block.outside_ids()))
    ids: list[np.ndarray] = []
    fractions: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    nodata: list[np.ndarray] = []
    batches = encoded_batches(  # at the model batch shape of the whole scene's grid, as on one machine
        task.scene, task.read, task.stretch, grid, encoder, batch_size=task.batch_size,
        workers=task.reader_threads, skip=skip, scene_grid=task.grid,
    )
    for batch, batch_embeddings in batches:
        nodata.append(batch.nodata + offset)
        if len(batch.tile_ids):
            ids.append(batch.tile_ids + offset)
            fractions.append(batch.valid_fraction)
            embeddings.append(batch_embeddings)
    dim = encoder.embedding_dim
    return BlockResult(
        block=task.block,
        tile_ids=np.concatenate(ids) if ids else np.zeros(0, np.int64),
        valid_fraction=np.concatenate(fractions) if fractions else np.zeros(0, np.float32),
        embeddings=np.concatenate(embeddings) if embeddings else np.zeros((0, dim), np.float32),
        nodata=np.concatenate(nodata) if nodata else np.zeros(0, np.int64),
        model_id=encoder.identity.model_id,
        weights_sha256=encoder.identity.weights_sha256,
        worker=worker_name(),
        seconds=time.perf_counter() - start,
    )
