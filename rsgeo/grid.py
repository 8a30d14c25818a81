"""The chip grid: which windows of a scene are fed to the model.

Pure functions of ``(width, height, transform, spec)``; no file is opened, so
the grid can be reasoned about, fuzzed, and split across workers freely.

Grid rules (documented in ``docs/schema.md``):

* Chips are square windows of ``size_px`` pixels laid out every ``stride_px``
  pixels from the top-left corner.
* Edge chips are *shifted*, not padded: the last chip of a row or column is
  moved inwards so that it ends exactly at the raster edge. Every pixel lies in
  at least one chip and no chip reaches outside the raster.
* Along a dimension shorter than ``size_px`` the chip is clamped to the raster
  (one chip spanning the whole dimension). A scene smaller than one chip gives
  one chip covering the whole scene.
* Tile ids are ``row * n_cols + col``: stable for a given scene and spec.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsgeo.errors import OptionError


@dataclass(frozen=True)
class ChipSpec:
    """Chip size and stride, both in pixels of the (possibly resampled) scene."""

    size_px: int
    stride_px: int

    def __post_init__(self) -> None:
        if self.size_px < 1:
            raise OptionError(f"chip size must be a positive number of pixels, got {self.size_px}")
        if self.stride_px < 1:
            raise OptionError(f"stride must be a positive number of pixels, got {self.stride_px}")
        if self.stride_px > self.size_px:
            raise OptionError(
                f"stride {self.stride_px} px is larger than the chip size {self.size_px} px and "
                "would leave pixels in no chip; use a stride no larger than the chip size"
            )

    @classmethod
    def from_overlap(cls, size_px: int, overlap: float) -> ChipSpec:
        """Spec with a fractional overlap (0 = none, 0.5 = half a chip)."""
        if not 0.0 <= overlap < 1.0:
            raise OptionError(f"overlap must be in [0, 1), got {overlap}")
        return cls(size_px, max(1, int(round(size_px * (1.0 - overlap)))))


#: Bounds of the default chip side in pixels of the scene: a chip below the lower one is an
#: upsampled smudge to the model; above the upper one (4 x a 224 input) reading costs more
#: than the model gains from the detail it then throws away.
MIN_DEFAULT_CHIP_PX = 16
MAX_DEFAULT_CHIP_PX = 896
#: A run that gives fewer tiles than this warns, naming the chip size option.
FEW_TILES = 16


def default_chip_px(model_input: int, pixel_size_m: float, training_extent_m: float | None) -> int:
    """The default chip side in pixels: the model's training ground extent in the scene's pixels.

    ``training_extent_m / pixel_size_m`` rounded, clamped to
    ``[MIN_DEFAULT_CHIP_PX, MAX_DEFAULT_CHIP_PX]``; the model's input size when
    the extent (or the pixel size) is unknown.
    """
    if training_extent_m is None or not (pixel_size_m > 0 and math.isfinite(pixel_size_m)):
        return model_input
    pixels = round(training_extent_m / pixel_size_m)
    return int(min(MAX_DEFAULT_CHIP_PX, max(MIN_DEFAULT_CHIP_PX, pixels)))


def axis_offsets(length: int, size: int, stride: int) -> list[int]:
    """Chip start offsets along one axis (shift rule: last chip ends at the edge)."""
    if length <= size:
        return [0]
    n = math.ceil((length - size) / stride) + 1
    offsets = [i * stride for i in range(n - 1)]
    last = length - size
    if not offsets or offsets[-1] != last:
        offsets.append(last)
    return offsets


def apply_affine(t: Affine, x: float, y: float) -> tuple[float, float]:
    """Map pixel ``(x, y)`` (column, row) through ``t`` (works with every affine release)."""
    return (t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f)


@dataclass(frozen=True)
class Chip:
    """One chip: its grid position, pixel window, transform and CRS."""

    tile_id: int
    row: int
    col: int
    window: Window
    transform: Affine
    crs: Any = field(default=None, compare=False)

    @property
    def corners(self) -> list[tuple[float, float]]:
        """The window's four corners in CRS coordinates (ring order, not closed)."""
        w, h = self.window.width, self.window.height
        t = self.transform
        return [apply_affine(t, x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the chip's corners in CRS units."""
        xs, ys = zip(*self.corners)
        return (min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class ChipGrid:
    """All chips of a raster of ``width`` x ``height`` under ``transform``."""

    width: int
    height: int
    transform: Affine
    spec: ChipSpec
    crs: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise OptionError(f"raster size must be positive, got {self.width} x {self.height}")

    @property
    def col_offsets(self) -> list[int]:
        return axis_offsets(self.width, self.spec.size_px, self.spec.stride_px)

    @property
    def row_offsets(self) -> list[int]:
        return axis_offsets(self.height, self.spec.size_px, self.spec.stride_px)

    @property
    def n_cols(self) -> int:
        return len(self.col_offsets)

    @property
    def n_rows(self) -> int:
        return len(self.row_offsets)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def chip(self, tile_id: int) -> Chip:
        """The chip with this id (ids are ``row * n_cols + col``)."""
        if not 0 <= tile_id < len(self):
            raise IndexError(f"tile id {tile_id} outside the grid of {len(self)} chips")
        row, col = divmod(tile_id, self.n_cols)
        return self._chip(row, col, self.row_offsets[row], self.col_offsets[col])

    def _chip(self, row: int, col: int, row_off: int, col_off: int) -> Chip:
        window = Window(
            col_off, row_off, min(self.spec.size_px, self.width), min(self.spec.size_px, self.height)
        )
        return Chip(
            tile_id=row * self.n_cols + col,
            row=row,
            col=col,
            window=window,
            transform=window_transform(window, self.transform),
            crs=self.crs,
        )

    def chips(self, start: int = 0, stop: int | None = None) -> Iterator[Chip]:
        """Chips with ids in ``[start, stop)``, in id (row-major) order.

        Any split of ``range(len(grid))`` into blocks yields the same chips as
        one pass over the whole grid, which is what lets workers share a scene.
        """
        stop = len(self) if stop is None else min(stop, len(self))
        rows, cols = self.row_offsets, self.col_offsets
        n_cols = len(cols)
        for tile_id in range(max(start, 0), stop):
            r, c = divmod(tile_id, n_cols)
            yield self._chip(r, c, rows[r], cols[c])

    def __iter__(self) -> Iterator[Chip]:
        return self.chips()


def tile_rings(grid: ChipGrid, tile_ids: np.ndarray) -> np.ndarray:
    """Closed corner rings ``(N, 5, 2)`` of the given chips, in CRS units.

    Vectorised form of ``chip.corners``: each corner ``(col, row)`` in pixels
    of the grid's raster is mapped through the grid's affine transform.
    """
    ids = np.asarray(tile_ids, np.int64)
    rows, cols = np.divmod(ids, grid.n_cols)
    row_off = np.asarray(grid.row_offsets, np.float64)[rows]
    col_off = np.asarray(grid.col_offsets, np.float64)[cols]
    w = float(min(grid.spec.size_px, grid.width))
    h = float(min(grid.spec.size_px, grid.height))
    px = np.stack([col_off, col_off + w, col_off + w, col_off, col_off], axis=1)
    py = np.stack([row_off, row_off, row_off + h, row_off + h, row_off], axis=1)
    t = grid.transform
    x = px * t.a + py * t.b + t.c
    y = px * t.d + py * t.e + t.f
    return np.stack([x, y], axis=2)
