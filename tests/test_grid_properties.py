"""Properties of the chip grid, fuzzed with hypothesis (issue 7).

For random raster sizes, affine transforms (north-up, rotated, sheared,
flipped, geographic-looking), chip sizes and strides:

* every pixel lies in at least one chip, and no chip reaches outside the raster;
* every chip's polygon (``Chip.corners``, ``tile_rings``) is its pixel window
  mapped through the affine transform, as rasterio computes it;
* tile ids are ``0 .. n-1``, unique, ``row * n_cols + col``, and stable (the
  same inputs give the same chips; the transform does not move them);
* any split of the ids into blocks, as workers take them, yields exactly the
  chips of one pass over the grid.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from affine import Affine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsgeo.grid import ChipGrid, ChipSpec, tile_rings

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def transforms(draw: st.DrawFn) -> Affine:
    kind = draw(st.sampled_from(["north-up", "rotated", "sheared", "flipped", "geographic"]))
    if kind == "geographic":  # degrees: tiny pixels, origin anywhere on the globe
        res = draw(st.floats(1e-6, 0.5))
        lon = draw(st.floats(-180, 180))
        lat = draw(st.floats(-90, 90))
        return Affine(res, 0.0, lon, 0.0, -res, lat)
    res_x = draw(st.floats(0.01, 1000))
    res_y = draw(st.floats(0.01, 1000))
    x0 = draw(st.floats(-1e7, 1e7))
    y0 = draw(st.floats(-1e7, 1e7))
    if kind == "north-up":
        return Affine(res_x, 0.0, x0, 0.0, -res_y, y0)
    if kind == "flipped":  # south-up rows
        return Affine(res_x, 0.0, x0, 0.0, res_y, y0)
    if kind == "rotated":
        angle = draw(st.floats(-180, 180))
        return Affine.translation(x0, y0) * Affine.rotation(angle) * Affine.scale(res_x, -res_y)
    shear_b = draw(st.floats(-0.9, 0.9)) * res_x
    shear_d = draw(st.floats(-0.9, 0.9)) * res_y
    t = Affine(res_x, shear_b, x0, shear_d, -res_y, y0)
    assume(abs(t.determinant) > 1e-6 * res_x * res_y)
    return t


@st.composite
def grids(draw: st.DrawFn, max_side: int = 400, per_axis: int = 40) -> ChipGrid:
    """Grids of at most ``per_axis`` chips along each side (scenes up to ``max_side`` pixels)."""
    size = draw(st.integers(1, max_side))
    stride = draw(st.integers(1, size))
    longest = min(max_side, size + stride * (per_axis - 1))
    width = draw(st.integers(1, longest))
    height = draw(st.integers(1, longest))
    return ChipGrid(width, height, draw(transforms()), ChipSpec(size, stride))


def magnitude(grid: ChipGrid) -> float:
    """Scale of the coordinates, for a rounding tolerance."""
    t = grid.transform
    return abs(t.c) + abs(t.f) + (abs(t.a) + abs(t.b) + abs(t.d) + abs(t.e)) * (grid.width + grid.height) + 1e-6


@SETTINGS
@given(grids())
def test_every_pixel_is_covered_and_no_chip_leaves_the_raster(grid: ChipGrid) -> None:
    covered = np.zeros((grid.height, grid.width), bool)
    w, h = min(grid.spec.size_px, grid.width), min(grid.spec.size_px, grid.height)
    for chip in grid:
        win = chip.window
        assert (win.width, win.height) == (w, h)
        assert 0 <= win.col_off and win.col_off + win.width <= grid.width
        assert 0 <= win.row_off and win.row_off + win.height <= grid.height
        covered[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width] = True
    assert covered.all()


@SETTINGS
@given(st.integers(1, 100_000), st.integers(1, 100_000), st.integers(1, 5000), st.data())
def test_offsets_step_by_the_stride_and_end_at_the_edge(width: int, height: int, size: int, data: st.DataObject) -> None:
    """Coverage without painting pixels, for sizes up to 100,000: chips start
    at 0, step by at most the stride (so no pixel is skipped), and the last
    one ends exactly at the edge."""
    stride = data.draw(st.integers(max(1, size // 50), size))
    grid = ChipGrid(width, height, Affine.identity(), ChipSpec(size, stride))
    for length, offsets in ((width, grid.col_offsets), (height, grid.row_offsets)):
        span = min(size, length)
        assert offsets[0] == 0
        assert offsets[-1] + span == length
        steps = np.diff(offsets)
        assert (steps > 0).all() and (steps <= stride).all()
        # the only step that may be shorter than the stride is the last (shifted) chip
        assert (steps[:-1] == stride).all()
        assert len(offsets) == (1 if length <= size else math.ceil((length - size) / stride) + 1)


@SETTINGS
@given(grids(per_axis=30))
def test_chip_polygons_are_windows_mapped_through_the_affine(grid: ChipGrid) -> None:
    ids = np.arange(len(grid))
    rings = tile_rings(grid, ids)
    tol = 1e-12 * magnitude(grid)
    t = grid.transform
    for chip in grid:
        win = chip.window
        # rasterio's window transform, and its corners
        wt = window_transform(win, t)
        assert chip.transform.almost_equals(wt, precision=tol)
        expected = np.array([wt * (0, 0), wt * (win.width, 0), wt * (win.width, win.height), wt * (0, win.height)])
        # the same corners straight from the full transform, in pixel coordinates of the scene
        direct = np.array([
            t * (win.col_off, win.row_off),
            t * (win.col_off + win.width, win.row_off),
            t * (win.col_off + win.width, win.row_off + win.height),
            t * (win.col_off, win.row_off + win.height),
        ])
        np.testing.assert_allclose(expected, direct, rtol=0, atol=tol)
        np.testing.assert_allclose(np.array(chip.corners), expected, rtol=0, atol=tol)
        ring = rings[chip.tile_id]
        np.testing.assert_allclose(ring[:4], expected, rtol=0, atol=tol)
        np.testing.assert_array_equal(ring[4], ring[0])  # closed
        left, bottom, right, top = chip.bounds
        assert left == expected[:, 0].min() and right == expected[:, 0].max()
        assert bottom == expected[:, 1].min() and top == expected[:, 1].max()


@SETTINGS
@given(grids(), transforms())
def test_tile_ids_are_unique_row_major_and_stable(grid: ChipGrid, other_transform: Affine) -> None:
    chips = list(grid)
    assert [c.tile_id for c in chips] == list(range(len(grid)))
    assert len(grid) == grid.n_rows * grid.n_cols
    for chip in chips:
        assert chip.tile_id == chip.row * grid.n_cols + chip.col
        assert chip.window.col_off == grid.col_offsets[chip.col]
        assert chip.window.row_off == grid.row_offsets[chip.row]
        assert grid.chip(chip.tile_id) == chip
    # stable: the same inputs give the same chips
    again = ChipGrid(grid.width, grid.height, grid.transform, ChipSpec(grid.spec.size_px, grid.spec.stride_px))
    assert list(again) == chips
    # the georeferencing moves polygons, never windows or ids
    moved = ChipGrid(grid.width, grid.height, other_transform, grid.spec)
    assert [(c.tile_id, c.window) for c in moved] == [(c.tile_id, c.window) for c in chips]
    # distinct chips have distinct windows (an id names one place)
    assert len({(c.window.col_off, c.window.row_off) for c in chips}) == len(chips)


@SETTINGS
@given(grids(), st.data())
def test_any_split_across_workers_gives_the_same_chips(grid: ChipGrid, data: st.DataObject) -> None:
    n = len(grid)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=8)))
    bounds = [0, *cuts, n]
    blocks = [list(grid.chips(a, b)) for a, b in itertools.pairwise(bounds)]
    # workers may finish in any order: reassemble by block position, as the reader does
    order = data.draw(st.permutations(range(len(blocks))))
    by_position = {i: blocks[i] for i in order}
    joined = [c for i in range(len(blocks)) for c in by_position[i]]
    assert joined == list(grid)
    # ranges reaching past either end are clipped, never wrapped or repeated
    assert list(grid.chips(-5, n + 5)) == list(grid)
    assert list(grid.chips(n, n + 3)) == []
    # a worker's block reads the same windows as the chips looked up one by one
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    assert [c.window for c in grid.chips(a, b)] == [grid.chip(i).window for i in range(a, b)]


@SETTINGS
@given(st.integers(1, 5000), st.data(), transforms())
def test_scene_no_larger_than_a_chip_is_one_chip_covering_it(size: int, data: st.DataObject, t: Affine) -> None:
    width, height = data.draw(st.integers(1, size)), data.draw(st.integers(1, size))
    grid = ChipGrid(width, height, t, ChipSpec(size, data.draw(st.integers(1, size))))
    (chip,) = list(grid)
    assert chip.window == Window(0, 0, width, height)
    np.testing.assert_allclose(
        tile_rings(grid, np.array([0]))[0, :4],
        [t * (0, 0), t * (width, 0), t * (width, height), t * (0, height)],
        rtol=0, atol=1e-12 * magnitude(grid),
    )
