"""Dense maps: per-patch values of overlapping chips blended onto one raster grid.

Pure NumPy over the chip grid (no file is opened). A chip's ``g × g`` patch
tokens each cover ``1/g`` of the chip's side; the dense raster has cells of
that size over the whole scene (:func:`dense_grid`): cell ``(i, j)`` spans
scene pixels ``[j·cw, (j+1)·cw) × [i·ch, (i+1)·ch)``, its transform is the
scene's (rotation included) scaled by ``(cw, ch)``.

**Blending rule.** A chip covers a cell when the cell's centre lies inside
the part of the chip the model saw; it gives the cell the value of the patch
that holds that centre, with the weight

    w = (1 − |dx| / ((W + cw)/2)) · (1 − |dy| / ((H + ch)/2))

where ``(dx, dy)`` is the cell centre's offset from the chip's centre,
``W × H`` the chip's size and ``cw × ch`` a cell's (a tent falling off from
the chip's centre to zero half a cell beyond its edge, so it is positive at
every cell centre inside the chip, also one lying on the edge). The cell's value is ``Σ w·v / Σ w`` over the
chips covering it, so every cell gets one value and ground is never counted
twice; cells no encoded chip covers are nodata (``nan``). Without overlap
every cell has one chip and takes its patch's value as it is. Where strides
are not a whole number of cells, a patch's value lands in the cells whose
centres it holds (nearest neighbour; a centre on the boundary of two patches
goes to the later one, right or below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

from rsgeo.grid import ChipGrid


@dataclass(frozen=True)
class SeenBox:
    """The part of every chip window the model saw, in pixels from the window's corner."""

    left: float
    top: float
    width: float
    height: float


def seen_box(grid: ChipGrid, resize_mode: str) -> SeenBox:
    """The chip part behind the patches: the whole window, or its centred square when ``shortest`` crops."""
    w = float(min(grid.spec.size_px, grid.width))
    h = float(min(grid.spec.size_px, grid.height))
    if resize_mode == "shortest" and w != h:
        side = min(w, h)
        return SeenBox((w - side) / 2.0, (h - side) / 2.0, side, side)
    return SeenBox(0.0, 0.0, w, h)


@dataclass(frozen=True)
class DenseGrid:
    """The raster grid of a dense map: ``height × width`` cells of ``cell_w × cell_h`` scene pixels."""

    width: int
    height: int
    cell_w: float
    cell_h: float
    patches: int
    transform: Affine


def dense_grid(grid: ChipGrid, patches: int, box: SeenBox) -> DenseGrid:
    """The cells of a dense map of ``grid`` whose chips give ``patches × patches`` tokens over ``box``."""
    cell_w, cell_h = box.width / patches, box.height / patches
    return DenseGrid(
        width=max(1, math.ceil(grid.width / cell_w - 1e-9)),
        height=max(1, math.ceil(grid.height / cell_h - 1e-9)),
        cell_w=cell_w,
        cell_h=cell_h,
        patches=patches,
        transform=grid.transform * Affine.scale(cell_w, cell_h),
    )


def _axis(start: float, length: float, cell: float, patches: int, n_cells: int) -> tuple[int, np.ndarray, np.ndarray]:
    """First cell, patch index and tent weight of the cells whose centres lie in ``[start, start+length)``."""
    first = max(0, math.ceil(start / cell - 0.5 - 1e-9))
    stop = min(n_cells, math.ceil((start + length) / cell - 0.5 - 1e-9))
    centres = (np.arange(first, max(first, stop)) + 0.5) * cell
    index = np.clip(np.floor((centres - start) / cell + 1e-9).astype(np.int64), 0, patches - 1)
    weight = 1.0 - np.abs(centres - (start + length / 2.0)) / ((length + cell) / 2.0)
    return first, index, weight


class Blender:
    """Accumulates chips' per-patch values into a :class:`DenseGrid` (see the module docstring)."""

    def __init__(self, grid: ChipGrid, dense: DenseGrid, box: SeenBox, bands: int) -> None:
        self.grid = grid
        self.dense = dense
        self.box = box
        self.sum = np.zeros((bands, dense.height, dense.width), np.float64)
        self.weight = np.zeros((dense.height, dense.width), np.float64)
        self._rows = np.asarray(grid.row_offsets, np.float64)
        self._cols = np.asarray(grid.col_offsets, np.float64)

    def add(self, tile_ids: np.ndarray, values: np.ndarray) -> None:
        """Blend chips in: ``values`` is ``(N, g, g, bands)`` for the chips ``tile_ids``."""
        d, box, g = self.dense, self.box, self.dense.patches
        for tile_id, value in zip(np.asarray(tile_ids, np.int64), values):
            r, c = divmod(int(tile_id), self.grid.n_cols)
            i0, pi, wy = _axis(self._rows[r] + box.top, box.height, d.cell_h, g, d.height)
            j0, pj, wx = _axis(self._cols[c] + box.left, box.width, d.cell_w, g, d.width)
            if not len(pi) or not len(pj):
                continue
            w = wy[:, None] * wx[None, :]
            patch_values = value[pi][:, pj]  # (cells_y, cells_x, bands)
            rows, cols = slice(i0, i0 + len(pi)), slice(j0, j0 + len(pj))
            self.sum[:, rows, cols] += np.moveaxis(patch_values, -1, 0) * w
            self.weight[rows, cols] += w

    def result(self) -> np.ndarray:
        """The blended ``float32`` ``(bands, height, width)`` map, ``nan`` where no chip covers a cell."""
        covered = self.weight > 0
        out = np.full(self.sum.shape, np.nan, np.float32)
        out[:, covered] = (self.sum[:, covered] / self.weight[covered]).astype(np.float32)
        return out
