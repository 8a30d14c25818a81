"""Blocks of chip rows: the unit of work sent to a cluster worker.

A block is a run of whole chip rows of a scene's grid, so its tile ids are
consecutive (``row * n_cols + col``). Whole rows let a worker read the block
with the ordinary :class:`~rsgeo.reader.ChipReader` over a :class:`RowsGrid`,
the grid restricted to those rows: same windows, same pixels, same chips as
the single-machine pass. Pure functions; no file is opened.
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


@dataclass(frozen=True)
class Block:
    """Chip rows ``[row0, row1)`` of a grid with ``n_cols`` columns."""

    row0: int
    row1: int
    n_cols: int

    @property
    def start(self) -> int:
        """First tile id of the block."""
        return self.row0 * self.n_cols

    @property
    def stop(self) -> int:
        """One past the last tile id of the block."""
        return self.row1 * self.n_cols

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"tiles {self.start}-{self.stop - 1} (chip rows {self.row0}-{self.row1 - 1})"


def block_rows(grid: ChipGrid, *, workers: int, block_chips: int | None = None) -> int:
    """Chip rows per block: ``block_chips`` if given, else sized for ``workers``."""
    if block_chips is None:
        target = math.ceil(len(grid) / max(1, workers * BLOCKS_PER_WORKER))
        block_chips = min(MAX_BLOCK_CHIPS, max(MIN_BLOCK_CHIPS, target))
    return max(1, block_chips // grid.n_cols)


def plan_blocks(grid: ChipGrid, *, workers: int = 1, block_chips: int | None = None) -> list[Block]:
    """Blocks covering every tile id of ``grid`` once, in id order."""
    rows = block_rows(grid, workers=workers, block_chips=block_chips)
    n_rows, n_cols = grid.n_rows, grid.n_cols
    return [Block(r, min(r + rows, n_rows), n_cols) for r in range(0, n_rows, rows)]


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
