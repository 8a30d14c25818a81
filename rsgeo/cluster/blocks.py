"""Blocks of chips: the unit of work sent to a cluster worker.

A block is a range of consecutive tile ids (``row * n_cols + col``) whose
length is a multiple of the model's batch size, so that every batch a worker
runs is full (the model always runs at one batch shape, and a short tail batch
is padded: see :func:`rsgeo.encoding.encode_batch`; blocks of whole batches
pad nothing but the scene's last). A worker reads a block with the ordinary
:class:`~rsgeo.reader.ChipReader` over a :class:`RowsGrid`, the grid
restricted to the chip rows the block touches, skipping the chips of those
rows outside the block: same windows, same pixels, same chips as the
single-machine pass. Pure functions; no file is opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rsgeo.grid import ChipGrid, axis_offsets

#: Blocks per worker a grid is cut into when the block size is left to rsgeo:
#: enough for load balancing and for a dead worker to cost little work again.
BLOCKS_PER_WORKER = 4
#: Bounds on the chips of a block: big enough that per-task costs (opening the
#: scene, planning the reads, Dask's own ~ms) vanish, small enough to balance.
MIN_BLOCK_CHIPS = 32
MAX_BLOCK_CHIPS = 2048
#: Block lengths are multiples of this when the batch size is left to each
#: worker: rsgeo's default batch on a GPU (256), a multiple of the CPU's (32).
DEFAULT_BATCH_QUANTUM = 256


@dataclass(frozen=True)
class Block:
    """Tile ids ``[start, stop)`` of a grid with ``n_cols`` columns."""

    start: int
    stop: int
    n_cols: int

    @property
    def row0(self) -> int:
        """First chip row the block touches."""
        return self.start // self.n_cols

    @property
    def row1(self) -> int:
        """One past the last chip row the block touches."""
        return -(-self.stop // self.n_cols)

    @property
    def offset(self) -> int:
        """Tile id of the first chip of row :attr:`row0` (local id 0 of its :class:`RowsGrid`)."""
        return self.row0 * self.n_cols

    def outside_ids(self) -> list[int]:
        """Tile ids of the block's rows that are not in the block (a worker skips them)."""
        return [*range(self.offset, self.start), *range(self.stop, self.row1 * self.n_cols)]

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"tiles {self.start}-{self.stop - 1} (chip rows {self.row0}-{self.row1 - 1})"


def block_length(grid: ChipGrid, *, workers: int, block_chips: int | None = None, batch_size: int | None = None) -> int:
    """Chips per block: ``block_chips`` if given, else sized for ``workers`` in whole batches.

    The automatic size is ``chips / (BLOCKS_PER_WORKER x workers)`` within
    ``[MIN_BLOCK_CHIPS, MAX_BLOCK_CHIPS]``, rounded up to a multiple of
    ``batch_size`` (:data:`DEFAULT_BATCH_QUANTUM` when each worker picks its own).
    """
    if block_chips is not None:
        return max(1, block_chips)
    quantum = batch_size or DEFAULT_BATCH_QUANTUM
    target = math.ceil(len(grid) / max(1, workers * BLOCKS_PER_WORKER))
    chips = min(MAX_BLOCK_CHIPS, max(MIN_BLOCK_CHIPS, target))
    return quantum * math.ceil(chips / quantum)


def plan_blocks(
    grid: ChipGrid, *, workers: int = 1, block_chips: int | None = None, batch_size: int | None = None
) -> list[Block]:
    """Blocks covering every tile id of ``grid`` once, in id order."""
    size = block_length(grid, workers=workers, block_chips=block_chips, batch_size=batch_size)
    n = len(grid)
    return [Block(start, min(start + size, n), grid.n_cols) for start in range(0, n, size)]


@dataclass(frozen=True)
class RowsGrid(ChipGrid):
    """The chip rows ``[row0, row1)`` of a grid, as a grid of their own.

    Windows (hence pixels) are those of the full grid; tile ids are local:
    ``local + row0 * n_cols`` is the id in the full grid.
    """

    row0: int = 0
    row1: int = 0

    @property
    def row_offsets(self) -> list[int]:
        return axis_offsets(self.height, self.spec.size_px, self.spec.stride_px)[self.row0 : self.row1]

    @classmethod
    def of(cls, grid: ChipGrid, block: Block) -> RowsGrid:
        if block.n_cols != grid.n_cols or not 0 <= block.row0 < block.row1 <= grid.n_rows:
            raise ValueError(f"block {block} does not fit a grid of {grid.n_rows} x {grid.n_cols} chips")
        return cls(grid.width, grid.height, grid.transform, grid.spec, crs=grid.crs, row0=block.row0, row1=block.row1)
