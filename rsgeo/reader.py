"""Streaming chip reader: reads ahead of inference on worker threads.

The grid is split into blocks of consecutive tile ids. Each worker thread
holds its own open :class:`~rsgeo.scene.Scene` (GDAL handles are not shared
across threads; GDAL, numpy and PIL release the GIL while they work) and turns
a block into model-ready chips. Blocks are consumed in order, so results are
deterministic whatever the number of workers, and at most ``prefetch`` blocks
are held in memory: memory does not grow with the scene.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Container, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from rsgeo.encoders.base import ImageSpec
from rsgeo.grid import ChipGrid
from rsgeo.preprocess import fit_chip
from rsgeo.scene import ReadOptions, Scene
from rsgeo.stretch import Stretch


@dataclass
class ChipBatch:
    """Model-ready chips of one batch and what the grid scan has covered."""

    tile_ids: np.ndarray  # int64 (N,)
    valid_fraction: np.ndarray  # float32 (N,)
    pixels: np.ndarray  # uint8 (N, size, size, 3)
    scanned: int  # grid chips accounted for since the previous batch (kept or skipped)


def default_workers() -> int:
    """Reader threads: enough to keep a GPU fed, one on a small CPU box."""
    cores = os.cpu_count() or 1
    return max(1, min(8, cores // 2))


class ChipReader:
    """Iterate model-ready batches over a grid (see module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: ReadOptions,
        stretch: Stretch,
        grid: ChipGrid,
        image_spec: ImageSpec,
        *,
        batch_size: int,
        workers: int | None = None,
        skip: Container[int] = frozenset(),
        prefetch: int | None = None,
        block_size: int | None = None,
    ) -> None:
        self.path = path
        self.options = options
        self.stretch = stretch
        self.grid = grid
        self.image_spec = image_spec
        self.batch_size = batch_size
        self.workers = workers or default_workers()
        self.skip = skip
        self.block_size = block_size or batch_size
        self.prefetch = prefetch or 2 * self.workers + 1
        self._local = threading.local()
        self._scenes: list[Scene] = []
        self._lock = threading.Lock()

    def _scene(self) -> Scene:
        scene = getattr(self._local, "scene", None)
        if scene is None:
            scene = Scene(self.path, self.options, stretch=self.stretch)
            self._local.scene = scene
            with self._lock:
                self._scenes.append(scene)
        return scene

    def read_block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Chips ``[start, stop)`` that pass ``min_valid`` and are not skipped."""
        scene = self._scene()
        size = self.image_spec.size
        ids: list[int] = []
        fractions: list[float] = []
        pixels: list[np.ndarray] = []
        for chip in self.grid.chips(start, stop):
            if chip.tile_id in self.skip:
                continue
            rgb, valid = scene.read_chip(chip.window)
            fraction = float(valid.mean())
            if fraction < self.options.min_valid:
                continue
            ids.append(chip.tile_id)
            fractions.append(fraction)
            pixels.append(fit_chip(rgb, self.image_spec))
        stack = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.uint8)
        return np.asarray(ids, np.int64), np.asarray(fractions, np.float32), stack, stop - start

    def _blocks(self) -> Iterator[tuple[int, int]]:
        n = len(self.grid)
        for start in range(0, n, self.block_size):
            yield start, min(start + self.block_size, n)

    def __iter__(self) -> Iterator[ChipBatch]:
        pending: deque[Future[tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = deque()
        blocks = self._blocks()
        buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        buffered = 0
        scanned = 0
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rsgeo-read")
        try:
            for block in blocks:
                pending.append(pool.submit(self.read_block, *block))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                ids, fractions, pixels, n_scanned = pending.popleft().result()
                nxt = next(blocks, None)
                if nxt is not None:
                    pending.append(pool.submit(self.read_block, *nxt))
                scanned += n_scanned
                if len(ids):
                    buffer.append((ids, fractions, pixels))
                    buffered += len(ids)
                while buffered >= self.batch_size:
                    batch, buffer, buffered = _take(buffer, self.batch_size)
                    yield ChipBatch(*batch, scanned=scanned)
                    scanned = 0
            if buffered:
                batch, buffer, buffered = _take(buffer, buffered)
                yield ChipBatch(*batch, scanned=scanned)
            elif scanned:
                yield ChipBatch(
                    np.zeros(0, np.int64),
                    np.zeros(0, np.float32),
                    np.zeros((0, self.image_spec.size, self.image_spec.size, 3), np.uint8),
                    scanned=scanned,
                )
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                for scene in self._scenes:
                    scene.close()
                self._scenes.clear()


def _take(
    buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Split the first ``n`` chips off a buffer of chip arrays."""
    ids = np.concatenate([b[0] for b in buffer])
    fractions = np.concatenate([b[1] for b in buffer])
    pixels = np.concatenate([b[2] for b in buffer]) if len(buffer) > 1 else buffer[0][2]
    head = (ids[:n], fractions[:n], pixels[:n])
    rest_n = len(ids) - n
    rest = [(ids[n:], fractions[n:], pixels[n:])] if rest_n else []
    return head, rest, rest_n


ProgressCallback = Callable[[int, int], None]
