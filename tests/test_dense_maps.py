"""Blending chips' patch values onto the dense raster grid (rsgeo/dense_maps.py), by hand."""

from __future__ import annotations

import numpy as np
from affine import Affine

from rsgeo.dense_maps import Blender, dense_grid, seen_box
from rsgeo.grid import ChipGrid, ChipSpec


def _two_chips() -> ChipGrid:
    # 84 x 56 px scene, 56 px chips every 28 px: chips at columns 0 and 28, overlapping by half.
    return ChipGrid(84, 56, Affine(10, 0, 500_000, 0, -10, 4_000_000), ChipSpec(56, 28))


def test_two_overlapping_chips_blend_as_computed_by_hand() -> None:
    grid = _two_chips()
    assert grid.col_offsets == [0, 28] and grid.row_offsets == [0]
    box = seen_box(grid, "shortest")
    dense = dense_grid(grid, 7, box)
    # 7 patches over 56 px: 8 px cells; 84 px / 8 = 10.5 -> 11 columns, 7 rows.
    assert (dense.width, dense.height, dense.cell_w, dense.cell_h) == (11, 7, 8.0, 8.0)
    rng = np.random.default_rng(0)
    a = rng.random((7, 7, 2))  # chip 0's two bands per patch
    b = rng.random((7, 7, 2))  # chip 1's
    blender = Blender(grid, dense, box, bands=2)
    blender.add(np.array([0, 1]), np.stack([a, b]))
    out = blender.result()
    assert out.shape == (2, 7, 11)

    # Cell (row 3, col 4): centre at x = 36 px, y = 28 px.
    # The tent reaches zero half a cell beyond the chip: |offset| / ((56 + 8) / 2 = 32).
    # chip 0 (x 0..56, centre 28): patch (3, 4), weight (1 - 8/32) * (1 - 0/32) = 24/32
    # chip 1 (x 28..84, centre 56): patch (3, floor((36-28)/8) = 1), weight (1 - 20/32) * 1 = 12/32
    expected = (24 / 32 * a[3, 4] + 12 / 32 * b[3, 1]) / (24 / 32 + 12 / 32)
    np.testing.assert_allclose(out[:, 3, 4], expected, rtol=1e-6)
    # Cell (row 0, col 6): centre x = 52, y = 4. chip 0: patch (0, 6), weight (1 - 24/32) * (1 - 24/32);
    # chip 1: patch (0, floor(24/8) = 3), weight (1 - 4/32) * (1 - 24/32).
    w0, w1 = (8 / 32) * (8 / 32), (28 / 32) * (8 / 32)
    np.testing.assert_allclose(out[:, 0, 6], (w0 * a[0, 6] + w1 * b[0, 3]) / (w0 + w1), rtol=1e-6)
    # Cells only one chip covers take its patch's value as it is.
    np.testing.assert_allclose(out[:, 5, 1], a[5, 1], rtol=1e-6)
    np.testing.assert_allclose(out[:, 2, 9], b[2, 6], rtol=1e-6)  # centre x = 76: chip 1's patch 6
    # Column 10's centre (x = 84) lies outside the scene and every chip: nodata.
    assert np.isnan(out[:, :, 10]).all()


def test_a_missing_chip_leaves_nodata_and_the_other_chip_alone() -> None:
    grid = _two_chips()
    box = seen_box(grid, "shortest")
    dense = dense_grid(grid, 7, box)
    blender = Blender(grid, dense, box, bands=1)
    b = np.arange(49, dtype=np.float64).reshape(7, 7, 1)
    blender.add(np.array([1]), b[None])
    out = blender.result()[0]
    assert np.isnan(out[:, :3]).all()  # centres x = 4, 12, 20: chip 0 only, not encoded
    # Column 3's centre (x = 28) lies on chip 1's left edge: still chip 1's, weight 1 - 28/32 > 0.
    np.testing.assert_allclose(out[:, 3:10], b[:, :, 0])


def test_the_dense_grid_keeps_a_rotated_geotransform() -> None:
    rotated = Affine.rotation(30) * Affine(10, 0, 0, 0, -10, 0)
    grid = ChipGrid(84, 56, Affine.translation(1000, 2000) * rotated, ChipSpec(56, 28))
    dense = dense_grid(grid, 7, seen_box(grid, "shortest"))
    # A cell corner (i, j) is the scene pixel (8 j, 8 i) under the scene's own transform.
    for i, j in ((0, 0), (3, 4), (6, 10)):
        x, y = dense.transform * (j, i)
        ex, ey = grid.transform * (8 * j, 8 * i)
        assert abs(x - ex) < 1e-6 and abs(y - ey) < 1e-6


def test_a_scene_narrower_than_a_chip_maps_the_centre_square_the_model_saw() -> None:
    # 40 x 56 px scene, 56 px chips: one chip clamped to 40 x 56; "shortest" crops its centre 40 x 40.
    grid = ChipGrid(40, 56, Affine(1, 0, 0, 0, -1, 0), ChipSpec(56, 56))
    box = seen_box(grid, "shortest")
    assert (box.left, box.top, box.width, box.height) == (0.0, 8.0, 40.0, 40.0)
    dense = dense_grid(grid, 5, box)  # 8 px cells
    blender = Blender(grid, dense, box, bands=1)
    values = np.arange(25, dtype=np.float64).reshape(1, 5, 5, 1)
    blender.add(np.array([0]), values)
    out = blender.result()[0]
    assert out.shape == (7, 5)
    assert np.isnan(out[0]).all() and np.isnan(out[6]).all()  # the cropped bands at top and bottom
    np.testing.assert_allclose(out[1:6], values[0, :, :, 0])
