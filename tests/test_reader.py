"""The streaming reader cuts exactly the chips ``Scene.read_chip`` would (issue 6).

The reader decodes block-aligned strips once and cuts many chips from them;
every chip, valid fraction and skipped chip must be what the per-chip path
(``read_chip`` + ``fit_chip``) gives, for tiled and striped files, nodata,
alpha and float scenes, overlapping and resized chips, any number of workers
and both memory layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from rsgeo.encoders.base import ImageSpec
from rsgeo.grid import ChipGrid, ChipSpec
from rsgeo.preprocess import fit_chip
from rsgeo.reader import ChipReader, plan_bands, plan_units
from rsgeo.scene import ReadOptions, Scene
from tests.conftest import OPENAI_MEAN, OPENAI_STD, shared

SPEC = ImageSpec(64, tuple(OPENAI_MEAN), tuple(OPENAI_STD))  # type: ignore[arg-type]


def write(path: Path, data: np.ndarray, **profile: Any) -> Path:
    count, height, width = data.shape
    meta = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": data.dtype.name,
        "crs": "EPSG:32633", "transform": Affine(10, 0, 500000, 0, -10, 5000000), **profile,
    }
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)
    return path


def texture(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (np.sin(x / 17.0) + np.cos(y / 11.0)) * 60 + 128
    return np.stack([base + rng.normal(0, 20, base.shape) + 10 * i for i in range(count)])


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reader")
    tiled: dict[str, Any] = {"tiled": True, "blockxsize": 128, "blockysize": 128, "compress": "deflate"}
    rgb = np.clip(texture(3, 350, 500), 0, 255).astype(np.uint8)
    nodata = np.clip(texture(4, 300, 420, 1) * 8, 1, 4000).astype(np.uint16)
    nodata[:, :90, :130] = 0  # a nodata corner: some chips skipped, some partly valid
    nodata[:, 200:, 300:] = 0
    floats = (texture(3, 260, 300, 2) / 255).astype(np.float32)
    floats[:, 40:90, 60:200] = np.nan
    rgba = np.concatenate([rgb, np.full((1, 350, 500), 255, np.uint8)])
    rgba[3, 100:220, 50:260] = 0
    return {
        "tiled-rgb": write(d / "tiled.tif", rgb, **tiled, photometric="RGB"),
        "tiled-uint16-nodata": write(d / "nodata.tif", nodata, **tiled, nodata=0),
        "tiled-float-nan": write(d / "float.tif", floats, tiled=True, blockxsize=64, blockysize=64),
        "rgba": write(d / "rgba.tif", rgba, **tiled, photometric="RGB", alpha="YES"),
        "striped-rgb": write(d / "striped.tif", rgb),
    }


def reference(path: Path, opts: ReadOptions, spec: ImageSpec = SPEC) -> tuple[ChipGrid, dict[int, tuple[float, np.ndarray]]]:
    with Scene(path, opts) as scene:
        grid = scene.grid(spec.size)
        ref = {}
        for chip in grid:
            rgb, valid = scene.read_chip(chip.window)
            fraction = float(valid.mean())
            if fraction >= opts.min_valid:
                ref[chip.tile_id] = (np.float32(fraction), fit_chip(rgb, spec))
    return grid, ref


def read_all(reader: ChipReader) -> tuple[list[int], dict[int, tuple[float, np.ndarray]], int]:
    order, got, scanned = [], {}, 0
    for batch in reader:
        scanned += batch.scanned
        assert batch.pixels.shape[1:] == (reader.image_spec.size,) * 2 + (3,)
        assert batch.pixels.dtype == np.uint8
        layout = batch.pixels.transpose(0, 3, 1, 2) if reader.channels_first else batch.pixels
        assert layout.flags.c_contiguous
        assert len(batch.tile_ids) <= reader.batch_size
        for t, f, p in zip(batch.tile_ids, batch.valid_fraction, batch.pixels):
            assert int(t) not in got, f"tile {t} read twice"
            order.append(int(t))
            got[int(t)] = (f, p.copy())
    return order, got, scanned


CASES = [
    ("tiled-rgb", ReadOptions()),
    ("tiled-rgb", ReadOptions(chip_size=50, stride=30)),  # overlapping, upsampled
    ("tiled-rgb", ReadOptions(chip_size=100, stride=100)),  # downsampled
    ("tiled-rgb", ReadOptions(chip_size=90, stride=70, bands=(2,))),  # grey: one band repeated
    ("tiled-uint16-nodata", ReadOptions(bands=(3, 2, 1), min_valid=0.3)),
    ("tiled-uint16-nodata", ReadOptions(bands=(4, 2, 2), chip_size=70, stride=45, min_valid=0.01)),
    ("tiled-float-nan", ReadOptions(chip_size=40, min_valid=0.2)),
    ("rgba", ReadOptions(min_valid=0.25)),
    ("striped-rgb", ReadOptions(chip_size=80, stride=64)),
    ("tiled-rgb", ReadOptions(gsd=13.0)),  # warped: read chip by chip
]


@pytest.mark.parametrize("workers,channels_first", [(1, False), (3, True)])
@pytest.mark.parametrize("name,opts", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_reader_cuts_what_read_chip_reads(scenes: dict[str, Path], name: str, opts: ReadOptions, workers: int, channels_first: bool) -> None:
    path = scenes[name]
    grid, ref = reference(path, opts)
    with Scene(path, opts) as scene:
        stretch = scene.stretch
    # Small units and strips: many strips shared between units, several bands.
    reader = ChipReader(
        path, opts, stretch, grid, SPEC, batch_size=7, workers=workers, unit_chips=5,
        strip_bytes=60_000, channels_first=channels_first,
    )
    _, got, scanned = read_all(reader)
    assert scanned == len(grid)
    assert sorted(got) == sorted(ref)
    for tile, (fraction, pixels) in ref.items():
        assert got[tile][0] == fraction, tile
        np.testing.assert_array_equal(got[tile][1], pixels, err_msg=f"tile {tile}")
    if reader._strips is not None:
        assert len(reader._strips) == 0, "every strip is freed after its last unit"


@pytest.mark.parametrize(
    "name,bands,chip",
    [("RGB.byte.tif", None, 64), ("L7_ETMs.tif", (3, 2, 1), 100), ("eolearn/s2_l1c_scene2_13band.tif", (4, 3, 2), 40)],
)
def test_reader_on_real_scenes(name: str, bands: tuple[int, ...] | None, chip: int) -> None:
    opts = ReadOptions(bands=bands, chip_size=chip, stride=chip * 3 // 4)
    path = shared(name)
    grid, ref = reference(path, opts)
    with Scene(path, opts) as scene:
        stretch = scene.stretch
    _, got, _ = read_all(ChipReader(path, opts, stretch, grid, SPEC, batch_size=16, workers=2))
    assert sorted(got) == sorted(ref) and ref
    for tile, (fraction, pixels) in ref.items():
        assert got[tile][0] == fraction
        np.testing.assert_array_equal(got[tile][1], pixels)


def test_batches_are_the_same_whatever_the_workers(scenes: dict[str, Path]) -> None:
    path, opts = scenes["tiled-uint16-nodata"], ReadOptions(bands=(3, 2, 1), chip_size=60, stride=40, min_valid=0.3)
    with Scene(path, opts) as scene:
        grid, stretch = scene.grid(64), scene.stretch

    def batches(workers: int) -> list[tuple[list[int], int]]:
        reader = ChipReader(path, opts, stretch, grid, SPEC, batch_size=6, workers=workers, unit_chips=4, strip_bytes=50_000)
        return [(b.tile_ids.tolist(), b.scanned) for b in reader]

    assert batches(1) == batches(4)


def test_skipped_chips_are_neither_read_nor_yielded(scenes: dict[str, Path]) -> None:
    path, opts = scenes["tiled-rgb"], ReadOptions(chip_size=64)
    grid, _ = reference(path, opts)
    with Scene(path, opts) as scene:
        stretch = scene.stretch
    order, _, _ = read_all(ChipReader(path, opts, stretch, grid, SPEC, batch_size=8, workers=2))
    done = set(order[:20])  # a resumed run: the first batches are in the journal
    rest, got, scanned = read_all(ChipReader(path, opts, stretch, grid, SPEC, batch_size=8, workers=2, skip=done))
    assert scanned == len(grid)
    assert rest == order[20:], "a resumed run encodes the remaining chips in the same order"
    assert not done & set(got)


@pytest.mark.parametrize("opts", [ReadOptions(bands=(3, 2, 1), chip_size=60, stride=40, min_valid=0.3),
                                  ReadOptions(bands=(3, 2, 1), chip_size=60, min_valid=0.3, gsd=13.0)],
                         ids=["strips", "warped"])
def test_nodata_ids_are_the_chips_read_and_not_kept(scenes: dict[str, Path], opts: ReadOptions) -> None:
    """What the journal records so that --resume reads a nodata chip once only."""
    path = scenes["tiled-uint16-nodata"]
    grid, ref = reference(path, opts)
    with Scene(path, opts) as scene:
        stretch = scene.stretch
    skip = set(range(0, len(grid), 3))  # a resumed run: every third chip is in the journal
    kept: list[int] = []
    nodata: list[int] = []
    for batch in ChipReader(path, opts, stretch, grid, SPEC, batch_size=5, workers=2, unit_chips=4, skip=skip):
        kept += batch.tile_ids.tolist()
        nodata += batch.nodata.tolist()
    assert sorted(kept) == sorted(set(ref) - skip)
    assert sorted(nodata) == sorted(set(range(len(grid))) - set(ref) - skip) != []


def test_closing_early_releases_the_scenes(scenes: dict[str, Path]) -> None:
    path, opts = scenes["tiled-rgb"], ReadOptions(chip_size=32)
    with Scene(path, opts) as scene:
        grid, stretch = scene.grid(64), scene.stretch
    reader = ChipReader(path, opts, stretch, grid, SPEC, batch_size=4, workers=2)
    it = iter(reader)
    next(it)
    it.close()
    assert reader._scenes == []


def test_bands_end_on_block_rows_where_224_px_chips_realign_with_512_px_blocks() -> None:
    grid = ChipGrid(20000, 20000, Affine.identity(), ChipSpec(224, 224))
    bands = plan_bands(grid.row_offsets, 224, 512, max_rows=27)
    assert bands[0] == (0, 16) and bands[1] == (16, 32)  # 16 x 224 = 7 x 512
    units = plan_units(grid, (512, 512), bytes_per_pixel=4, strip_bytes=12 << 20, unit_chips=32)
    assert {u.row1 - u.row0 for u in units[:-200]} == {16}
    assert all(len(u) <= 32 for u in units)


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(1, 700), height=st.integers(1, 700), size=st.integers(6, 300),
    stride_frac=st.floats(0.1, 1.0), block_h=st.integers(1, 600), block_w=st.integers(1, 600),
    unit_chips=st.integers(1, 40), strip_bytes=st.integers(1, 2_000_000),
)
def test_units_hold_every_chip_once_in_a_fixed_order(
    width: int, height: int, size: int, stride_frac: float, block_h: int, block_w: int, unit_chips: int, strip_bytes: int
) -> None:
    stride = max(1, int(size * stride_frac))
    grid = ChipGrid(width, height, Affine.identity(), ChipSpec(size, stride))
    units = plan_units(grid, (block_h, min(block_w, width)), strip_bytes=strip_bytes, unit_chips=unit_chips)
    n_cols = grid.n_cols
    ids = np.concatenate([u.tile_ids(n_cols) for u in units])
    assert sorted(ids.tolist()) == list(range(len(grid)))
    assert all(len(u) <= max(unit_chips, u.row1 - u.row0) for u in units)
    # Bands tile the chip rows in order.
    rows = [(u.row0, u.row1) for u in units]
    assert rows[0][0] == 0 and rows[-1][1] == grid.n_rows
