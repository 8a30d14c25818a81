"""Every valid pixel lies in a chip; written tiles are exactly the chips whose
valid fraction reaches the threshold, with the right fractions (issue 2, point 3)."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import rasterio

import rsgeo
from rsgeo.encoders.testing import HashEncoder
from rsgeo.pipeline import RunOptions
from rsgeo.scene import ReadOptions
from tests.conftest import shared


def windows(width: int, height: int, size: int, stride: int) -> dict[int, tuple[int, int, int, int]]:
    """All grid windows by tile id, from the documented rule (not rsgeo.grid)."""
    w, h = min(size, width), min(size, height)

    def offs(length: int, s: int) -> list[int]:
        if length <= s:
            return [0]
        n = -(-(length - s) // stride) + 1
        return sorted({min(i * stride, length - s) for i in range(n)})

    cols, rows = offs(width, size), offs(height, size)
    return {r * len(cols) + c: (cols[c], rows[r], w, h) for r in range(len(rows)) for c in range(len(cols))}


@pytest.mark.parametrize(
    "scene,size,stride,threshold,bands",
    [
        ("RGB.byte.tif", 96, 96, 0.5, None),  # nodata collar around a rotated footprint
        ("RGB.byte.tif", 64, 40, 0.25, None),  # overlapping chips
        ("OSBS_029.tif", 128, 128, 0.9, None),  # nodata 255 declared
        ("L7_ETMs.tif", 100, 100, 0.5, (3, 2, 1)),  # no nodata: every chip is written
    ],
)
def test_written_tiles_are_the_chips_over_threshold(tmp_path, scene, size, stride, threshold, bands) -> None:
    path = shared(scene)
    out = tmp_path / "out.gpkg"
    rsgeo.embed(
        path, out, read=ReadOptions(chip_size=size, stride=stride, min_valid=threshold, bands=bands),
        options=RunOptions(encoder=HashEncoder()),
    )
    tiles = pyogrio.read_dataframe(out, layer="tiles").set_index("tile_id")
    with rasterio.open(path) as src:
        valid = src.dataset_mask() > 0  # GDAL's own view of which pixels hold data
        grid = windows(src.width, src.height, size, stride)
    covered = np.zeros_like(valid)
    expected = {}
    for tile_id, (c, r, w, h) in grid.items():
        covered[r : r + h, c : c + w] = True
        frac = valid[r : r + h, c : c + w].mean()
        if frac >= threshold:
            expected[tile_id] = frac
    assert covered.all(), "some pixels lie in no chip"
    assert set(tiles.index) == set(expected)
    got = tiles.loc[sorted(expected), "valid_fraction"].to_numpy()
    np.testing.assert_allclose(got, [expected[t] for t in sorted(expected)], atol=1e-6)
    if scene == "RGB.byte.tif":
        assert len(expected) < len(grid), "the collar must make some chips fall below the threshold"
