from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.windows import transform as window_transform

from rsgeo.errors import OptionError
from rsgeo.grid import ChipGrid, ChipSpec, axis_offsets, tile_rings


def test_axis_offsets_shift_last_chip_to_edge() -> None:
    assert axis_offsets(500, 224, 224) == [0, 224, 276]
    assert axis_offsets(448, 224, 224) == [0, 224]
    assert axis_offsets(100, 224, 224) == [0]


def test_axis_offsets_with_overlap() -> None:
    assert axis_offsets(300, 224, 112) == [0, 76]
    assert axis_offsets(600, 224, 112) == [0, 112, 224, 336, 376]


def test_small_scene_gives_one_clamped_chip() -> None:
    grid = ChipGrid(100, 101, Affine(10, 0, 500000, 0, -10, 5000000), ChipSpec(224, 224))
    chips = list(grid)
    assert len(chips) == 1
    assert (chips[0].window.width, chips[0].window.height) == (100, 101)


def test_stride_larger_than_chip_is_refused() -> None:
    with pytest.raises(OptionError, match="larger than the chip size"):
        ChipSpec(100, 150)


@pytest.mark.parametrize("bad", [0, -3])
def test_nonpositive_sizes_refused(bad: int) -> None:
    with pytest.raises(OptionError):
        ChipSpec(bad, 1)
    with pytest.raises(OptionError):
        ChipSpec(10, bad)


def test_tile_rings_match_window_transform_for_rotated_grid() -> None:
    t = Affine.rotation(17) * Affine(0.5, 0.1, 1000, 0.05, -0.5, 2000)
    grid = ChipGrid(333, 250, t, ChipSpec(64, 48))
    ids = np.arange(len(grid))
    rings = tile_rings(grid, ids)
    for chip in grid:
        wt = window_transform(chip.window, t)
        w, h = chip.window.width, chip.window.height
        expected = [wt * (0, 0), wt * (w, 0), wt * (w, h), wt * (0, h)]
        np.testing.assert_allclose(rings[chip.tile_id, :4], expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(chip.corners, expected, rtol=0, atol=1e-9)
    assert len({c.tile_id for c in grid}) == len(grid)
