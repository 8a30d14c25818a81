"""The read-and-encode loop: chips of a grid, batch by batch, with their embeddings.

What a single-machine run and a cluster worker's block both do (the pipeline
and :mod:`rsgeo.cluster.tasks` call :func:`encoded_batches`), and the rule that
makes their bytes agree: every batch runs at one fixed model batch shape
(:func:`encode_batch`).
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterator
from typing import TYPE_CHECKING

import numpy as np

from rsgeo.callbacks import CancelCheck
from rsgeo.encoders.base import Encoder
from rsgeo.errors import Cancelled, opt
from rsgeo.grid import ChipGrid
from rsgeo.reader import ChipBatch, ChipReader
from rsgeo.scene import ReadOptions
from rsgeo.stretch import Stretch

if TYPE_CHECKING:
    from rsgeo.encoders.dense import DenseBatch, DenseViT


def default_batch_size(device: str) -> int:
    """Chips per model batch when none is given: 256 on a GPU, 32 on the CPU."""
    return 256 if device.startswith("cuda") else 32


def encoded_batches(
    path: str | os.PathLike[str],
    read: ReadOptions,
    stretch: Stretch,
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

    Reads with :class:`ChipReader` (``batch_size`` chips a batch, the device's
    default when ``None``) in the memory layout the encoder eats, and encodes
    every batch at the run's one model batch shape, that of ``scene_grid``
    (the whole scene's grid when ``grid`` is a block's rows). ``cancel`` is
    checked after each read, before the batch is encoded.
    """
    size = batch_size or default_batch_size(encoder.device)
    reader = ChipReader(
        path, read, stretch, grid, encoder.image_spec, batch_size=size, workers=workers, skip=skip,
        device=encoder.device, channels_first=encoder.channels_first, allocate=encoder.empty_batch,
    )
    shape = model_batch_shape(size, scene_grid or grid)
    if getattr(encoder, "needs_calibration", False):
        encoder.calibrate(calibration_chips(path, read, stretch, scene_grid or grid, encoder, shape, workers))  # type: ignore[attr-defined]
    for batch in reader:
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled; rerun with {opt('resume')} to continue from the chips already encoded")
        yield batch, encode_batch(encoder, batch.pixels, shape)


class _Except:
    """The ids of a grid not to read: all but ``wanted``."""

    def __init__(self, wanted: Container[int]) -> None:
        self.wanted = wanted

    def __contains__(self, tile_id: object) -> bool:
        return tile_id not in self.wanted


def calibration_chips(
    path: str | os.PathLike[str], read: ReadOptions, stretch: Stretch, grid: ChipGrid, encoder: Encoder,
    n: int, workers: int | None,
) -> np.ndarray:
    """The ``n`` chips of the whole scene's ``grid`` a static int8 tower is calibrated on.

    Chosen from the grid alone (:mod:`rsgeo.engines.calibration`), so a resumed
    run and every cluster worker calibrate on the same chips as an
    uninterrupted run. Empty when no candidate has enough valid pixels.
    """
    from rsgeo.engines.calibration import candidate_ids, pick

    wanted = frozenset(candidate_ids(len(grid), n).tolist())
    reader = ChipReader(
        path, read, stretch, grid, encoder.image_spec, batch_size=max(1, len(wanted)), workers=workers,
        skip=_Except(wanted), device="cpu", channels_first=False,
    )
    ids: list[np.ndarray] = []
    pixels: list[np.ndarray] = []
    for batch in reader:
        ids.append(batch.tile_ids)
        pixels.append(np.ascontiguousarray(batch.pixels))
    if not ids:
        return np.zeros((0, encoder.image_spec.size, encoder.image_spec.size, 3), np.uint8)
    all_ids, all_pixels = np.concatenate(ids), np.concatenate(pixels)
    order = np.argsort(all_ids, kind="stable")
    chosen: np.ndarray = all_pixels[order][pick(all_ids[order], n)]
    return chosen


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
    full = encoder.empty_batch(batch_size, pixels.shape[1])
    full[:n] = pixels
    full[n:] = 0
    return encoder.encode_images(full)[:n]


def encoded_dense_batches(
    path: str | os.PathLike[str],
    read: ReadOptions,
    stretch: Stretch,
    grid: ChipGrid,
    dense: DenseViT,
    *,
    batch_size: int | None,
    workers: int | None,
    skip: Container[int],
    cancel: CancelCheck | None = None,
) -> Iterator[tuple[ChipBatch, DenseBatch]]:
    """:func:`encoded_batches` for ``--dense`` runs: each batch's pooled and patch embeddings.

    The pooled embeddings are the very bytes :func:`encoded_batches` stores
    (the same reader, batch shape and padding; see :mod:`rsgeo.encoders.dense`).
    """
    encoder = dense.encoder
    size = batch_size or default_batch_size(encoder.device)
    reader = ChipReader(
        path, read, stretch, grid, encoder.image_spec, batch_size=size, workers=workers, skip=skip,
        device=encoder.device, channels_first=encoder.channels_first, allocate=encoder.empty_batch,
    )
    shape = model_batch_shape(size, grid)
    for batch in reader:
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled; rerun with {opt('resume')} to continue from the chips already encoded")
        yield batch, encode_dense_batch(dense, batch.pixels, shape)


def encode_dense_batch(dense: DenseViT, pixels: np.ndarray, batch_size: int) -> DenseBatch:
    """:func:`encode_batch` for the dense capability: padded to the run's one batch shape."""
    from rsgeo.encoders.dense import DenseBatch

    n = len(pixels)
    g, d = dense.grid_size, dense.embedding_dim
    if n == 0:
        return DenseBatch(np.zeros((0, d), np.float32), np.zeros((0, g, g, d), np.float32))
    if n >= batch_size:
        return dense.encode_dense(pixels)
    full = dense.encoder.empty_batch(batch_size, pixels.shape[1])
    full[:n] = pixels
    full[n:] = 0
    out = dense.encode_dense(full)
    return DenseBatch(out.embeddings[:n], out.patches[:n])
