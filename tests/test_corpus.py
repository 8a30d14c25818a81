"""Broken and odd inputs: a correct result or one clear line, never a lost file (issue 7).

Each case runs the real ``rsgeo`` command in a subprocess on a scene that
:mod:`tests.corpus` writes into ``tmp_path``, and checks the exit code, stderr
and the output file. ``docs/errors.md`` lists the same cases with the messages.
The deterministic ``test:hash`` encoder stands in for a model: these tests are
about the inputs, not the model.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import CRS, Geod
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsgeo.errors import OutputError
from rsgeo.gpkg import atomic_output, read_metadata
from rsgeo.scene import ReadOptions, Scene
from rsgeo.stretch import compute_stretch
from tests import corpus as C

Maker = Callable[[Path], Path]
MODEL = ["--model", "test:hash"]
CLASSES = ["--classes", "forest,water,urban area"]
CHIPS = ["--chip-size", str(C.CHIP)]


# -- helpers ---------------------------------------------------------------------


def rsgeo(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real command, progress off so that stderr holds only messages."""
    return subprocess.run(
        [sys.executable, "-m", "rsgeo", *map(str, args), "--progress", "none"],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def classify(scene: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return rsgeo("classify", scene, "-o", out, *MODEL, *CLASSES, *extra)


def assert_ok(proc: subprocess.CompletedProcess[str], out: Path, *, warnings: Sequence[str] = ()) -> None:
    """Exit 0, the output written, and on stderr exactly ``warnings`` (whole lines) then the 'wrote' line."""
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [*warnings, f"rsgeo: wrote {out}"], proc.stderr
    assert out.is_file()


def few_tiles_warning(scene: Path, tiles: int) -> str:
    """The one warning a default chip of 224 px (the test encoder's input; 10 m pixels here) gives on a small scene."""
    return (f"rsgeo: WARNING: {scene.name} gives only {tiles} tile{'' if tiles == 1 else 's'} of 224 px (2240 m); "
            "for a finer answer give a smaller --chip-size (pixels, or metres such as 100m)")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str, code: int | None = None) -> str:
    """Non-zero exit, exactly one line on stderr, no traceback, mentioning ``words``."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stderr
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith(("rsgeo: error: ", "rsgeo classify: error: ", "rsgeo query: error: ", "rsgeo embed: error: ")), line
    assert "Traceback" not in proc.stderr and "internal error" not in line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in: {line}"
    return line


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial GeoPackages rsgeo may have left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists(), f"{out} was written by a failed run"
    assert leftovers(out.parent) == []


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def tiles(out: Path, layer: str = "tiles") -> Any:
    """A layer as a GeoDataFrame in tile-id order."""
    return pyogrio.read_dataframe(out, layer=layer).sort_values("tile_id").reset_index(drop=True)


def ring(geometry: Any) -> np.ndarray:
    """The exterior ring's 4 corners (without the closing point)."""
    return np.asarray(geometry.exterior.coords)[:4]


def window_ring(transform: Affine, col: int, row: int, width: int, height: int) -> np.ndarray:
    """What a tile polygon must be: the pixel window mapped through the affine (rasterio's own math)."""
    t = window_transform(Window(col, row, width, height), transform)
    return np.asarray([t * (0, 0), t * (width, 0), t * (width, height), t * (0, height)])


def valid_fraction(mask: np.ndarray, col: int, row: int, size: int) -> float:
    return float(mask[row : row + size, col : col + size].mean())


def expected_kept(mask: np.ndarray, size: int = C.CHIP, min_valid: float = 0.5) -> dict[int, float]:
    """Tile id -> valid fraction of the chips a validity mask keeps (sizes divide evenly here)."""
    n_rows, n_cols = mask.shape[0] // size, mask.shape[1] // size
    kept = {}
    for r in range(n_rows):
        for c in range(n_cols):
            f = valid_fraction(mask, c * size, r * size, size)
            if f >= min_valid:
                kept[r * n_cols + c] = f
    return kept


# -- files that are not (complete) rasters -------------------------------------------


@pytest.mark.parametrize(
    "make, words",
    [
        (C.not_a_raster, ["notes.tif", "not a raster", "complete GeoTIFF"]),
        (C.empty_file, ["empty.tif", "not a raster"]),
        (C.truncated_header, ["cut_header.tif", "not a raster", "still being copied"]),
    ],
    ids=["not-a-raster", "empty-file", "truncated-header"],
)
@pytest.mark.parametrize("command", ["classify", "query", "embed"])
def test_unreadable_file_is_one_line(tmp_path: Path, make: Maker, words: list[str], command: str) -> None:
    scene = make(tmp_path)
    out = tmp_path / "out.gpkg"
    extra = {"classify": CLASSES, "query": ["--text", "a harbour"], "embed": []}[command]
    proc = rsgeo(command, scene, "-o", out, *MODEL, *extra)
    assert_one_line_error(proc, *words, code=2)
    assert_nothing_written(out)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])  # uint16 fails in the stretch sample, uint8 mid-run
def test_truncated_tiles_fail_cleanly_and_keep_the_existing_output(tmp_path: Path, dtype: str) -> None:
    data = C.pattern(3, C.HEIGHT, C.WIDTH, dtype)
    src = C.write(tmp_path / "src.tif", data)
    cog = tmp_path / "cog.tif"
    rasterio.shutil.copy(src, cog, driver="COG", blocksize=64, compress="deflate", overviews="NONE")
    scene = tmp_path / "copying.tif"
    scene.write_bytes(cog.read_bytes()[: int(cog.stat().st_size * 0.6)])
    with rasterio.open(scene) as ds:  # the header is intact: the damage shows only when pixels are read
        assert ds.width == C.WIDTH

    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), "copying.tif", "damaged or incomplete", "copy the file again", code=2)
    assert_nothing_written(out)

    existing = tmp_path / "existing.gpkg"
    assert_ok(classify(src, existing, *CHIPS), existing)
    before = fingerprint(existing)
    assert_one_line_error(classify(scene, existing, *CHIPS, "--overwrite"), "damaged or incomplete", code=2)
    assert fingerprint(existing) == before
    assert leftovers(tmp_path) == []


def test_scene_path_that_is_missing_or_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(tmp_path / "nope.tif", out), "nope.tif", "does not exist", code=2)
    assert_one_line_error(classify(tmp_path, out), "is a folder", code=2)
    assert_nothing_written(out)


# -- STAC items and searches (docs/inputs.md; a served item and a STAC API: tests/test_stac.py) ---------------

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once

STAC_MISTAKES = [
    # (id, the command line with {item} for a local item and {out} for a new output folder, words the message must hold)
    ("item-url-unreachable", ["embed", f"{UNREACHABLE}/item.json", "-o", "{out}/x.gpkg"],
     ["cannot fetch the STAC item", "Connection refused", "check the URL"]),
    ("item-without-the-band", ["embed", "{item}", "-o", "{out}/x.gpkg", "--bands", "nir,red,green"],
     ["corpus-item", "no band nir", "red, green, blue"]),
    ("item-without-a-visual-asset", ["embed", "{item}", "-o", "{out}/x.gpkg", "--bands", "visual"],
     ["STAC item 'corpus-item' has no visual asset", "--bands red,green,blue"]),
    ("not-a-stac-item", ["embed", "{out}/../not_an_item.json", "-o", "{out}/x.gpkg"], ["is not a STAC item"]),
    ("search-unreachable", ["embed", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}"],
     ["the STAC search at", "failed ([Errno 111] Connection refused)", "check the URL"]),
    ("search-and-a-scene", ["embed", "{item}", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}"], ["not both"]),
    ("search-filter-without-search", ["embed", "{item}", "-o", "{out}/x.gpkg", "--max-cloud", "20"],
     ["--max-cloud filters a STAC search", "--stac-search URL"]),
    ("neither-scene-nor-search", ["embed", "-o", "{out}/x.gpkg"], ["give a scene", "--stac-search"]),
    ("search-output-not-a-folder", ["embed", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}/x.gpkg"],
     ["existing folder", "-o OUT_DIR"]),
    ("search-bbox-three-numbers", ["embed", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}", "--bbox", "1,2,3"],
     ["--bbox takes four numbers"]),
    ("search-bbox-not-degrees", ["embed", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}", "--bbox",
                                 "500000,4000000,510000,4010000"], ["not in longitude/latitude degrees", "--bbox-crs"]),
    ("search-max-cloud-over-100", ["embed", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}", "--max-cloud", "150"],
     ["--max-cloud", "[0, 100]"]),
    ("search-with-zones", ["classify", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}", *CLASSES, "--zones", "z.gpkg"],
     ["--zones does not go with --stac-search"]),
    ("search-mosaic-into-a-folder", ["embed", "--stac-search", f"{UNREACHABLE}/api", "--mosaic", "-o", "{out}"],
     ["--mosaic writes one result", "-o OUT.gpkg"]),
    ("search-query-without-text", ["query", "--stac-search", f"{UNREACHABLE}/api", "-o", "{out}"], ["--text"]),
]


@pytest.mark.parametrize("command, words", [(c, w) for _, c, w in STAC_MISTAKES], ids=[i for i, _, _ in STAC_MISTAKES])
def test_stac_mistake_is_one_line(tmp_path: Path, command: list[str], words: list[str]) -> None:
    item = C.stac_item(tmp_path)
    (tmp_path / "not_an_item.json").write_text('{"type": "FeatureCollection", "features": []}')
    out = tmp_path / "out"
    out.mkdir()
    proc = rsgeo(*[a.format(item=item, out=out) for a in command], *MODEL, timeout=120)
    assert_one_line_error(proc, *words, code=2)
    assert list(out.iterdir()) == []


def test_stac_item_with_a_damaged_asset_is_one_line_naming_the_item(tmp_path: Path) -> None:
    import json

    item = C.stac_item(tmp_path)
    doc = json.loads(item.read_text())
    doc["assets"]["red"]["href"] = C.truncated_tiles(tmp_path).name
    item.write_text(json.dumps(doc))
    out = tmp_path / "out.gpkg"
    proc = rsgeo("embed", item, "-o", out, *MODEL, *CHIPS)
    assert_one_line_error(proc, "item.json is damaged or incomplete", "TIFFFillTile", code=2)  # not the VRT's XML
    assert_nothing_written(out)


def test_stac_search_without_pystac_client_names_the_extra(tmp_path: Path) -> None:
    """pystac-client is an extra: without it, the line to install it (a module that fails to import stands in)."""
    (tmp_path / "shim").mkdir()
    (tmp_path / "shim" / "pystac_client.py").write_text("raise ImportError('no pystac_client here')\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "rsgeo", "embed", "--stac-search", f"{UNREACHABLE}/api", "-o", str(out), *MODEL,
         "--progress", "none"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")])},
    )
    assert_one_line_error(proc, "--stac-search needs pystac-client", "pip install 'rsgeo[stac]'", code=2)
    assert list(out.iterdir()) == []


# -- georeferencing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, words",
    [
        (C.no_crs, ["no_crs.tif", "has no CRS", "rio edit-info --crs"]),
        (C.no_transform, ["no_transform.tif", "no geotransform", "georeference it"]),
        (C.gcps_only, ["gcps.tif", "GCPs only", "gdalwarp"]),
    ],
    ids=["no-crs", "no-geotransform", "gcps-only"],
)
def test_not_georeferenced_is_one_line(tmp_path: Path, make: Maker, words: list[str]) -> None:
    scene = make(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), *words, code=2)
    assert_nothing_written(out)


@pytest.mark.parametrize("make, transform", [(C.rotated, C.ROTATED), (C.sheared, C.SHEARED)], ids=["rotated", "sheared"])
def test_rotated_and_sheared_grids_give_exact_polygons(tmp_path: Path, make: Maker, transform: Affine) -> None:
    scene = make(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS), out)
    for layer in ("tiles", "landcover"):
        gdf = tiles(out, layer)
        assert gdf.tile_id.tolist() == list(range(12))
        for _, t in gdf.iterrows():
            expected = window_ring(transform, int(t.col) * C.CHIP, int(t.row) * C.CHIP, C.CHIP, C.CHIP)
            np.testing.assert_allclose(ring(t.geometry), expected, rtol=0, atol=1e-6)
        # exact parallelograms, not bounding boxes: the area is the window's pixels times |det|
        np.testing.assert_allclose(gdf.geometry.area, abs(transform.determinant) * C.CHIP**2, rtol=1e-9)


def test_geographic_crs_keeps_degrees_and_sizes_chips_in_metres(tmp_path: Path) -> None:
    scene = C.geographic(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, "--chip-size", "640m"), out)
    gdf = tiles(out)
    assert gdf.crs.to_epsg() == 4326
    # 640 m in pixels of 0.0001 degree at the scene centre, measured independently on the ellipsoid
    with rasterio.open(scene) as ds:
        t = ds.transform
        cx, cy = t * (ds.width / 2, ds.height / 2)
    geod = Geod(ellps="WGS84")
    dx = geod.inv(cx, cy, cx + 0.0001, cy)[2]
    dy = geod.inv(cx, cy, cx, cy + 0.0001)[2]
    size = round(640 / ((dx + dy) / 2))
    assert read_metadata(out)["grid"]["size_px"] == size
    first = gdf.iloc[0]
    np.testing.assert_allclose(ring(first.geometry), window_ring(t, 0, 0, size, size), atol=1e-12)


def test_crs_without_epsg_code_is_written_unchanged(tmp_path: Path) -> None:
    scene = C.crs_without_epsg(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS), out)
    written = tiles(out).crs
    assert written.to_epsg() is None
    assert written.equals(CRS.from_user_input(C.CUSTOM_CRS))


# -- bands and data types -------------------------------------------------------------------


@pytest.mark.parametrize(
    "count, dtype, bands, used",
    [
        (1, "uint8", None, [1, 1, 1]),
        (2, "uint8", "1", [1, 1, 1]),
        (4, "uint8", None, [1, 2, 3]),  # RGBA: the alpha band is the mask, not a colour
        (4, "uint16", "3,2,1", [3, 2, 1]),
    ],
    ids=["1-band", "2-band-grey", "4-band-rgba", "4-band-rgbn"],
)
def test_band_counts(tmp_path: Path, count: int, dtype: str, bands: str | None, used: list[int]) -> None:
    scene = C.bands(tmp_path, count, dtype)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS, *(["--bands", bands] if bands else [])), out)
    assert read_metadata(out)["read"]["bands"] == used
    assert len(tiles(out)) == 12


@pytest.mark.parametrize("count, dtype", [(2, "uint8"), (4, "uint16")], ids=["2-band", "4-band-uint16"])
def test_band_counts_without_colour_need_bands(tmp_path: Path, count: int, dtype: str) -> None:
    scene = C.bands(tmp_path, count, dtype)
    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), f"has {count} bands", "--bands", code=2)
    assert_nothing_written(out)


def test_thirteen_bands_need_bands_then_work(tmp_path: Path) -> None:
    scene = C.sentinel2_like(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), "13 bands", "--bands 4,3,2", code=2)
    assert_nothing_written(out)
    assert_ok(classify(scene, out, *CHIPS, "--bands", "4,3,2"), out)
    meta = read_metadata(out)
    assert meta["read"]["bands"] == [4, 3, 2]
    with rasterio.open(scene) as ds:
        data = ds.read([4, 3, 2])
    np.testing.assert_allclose(meta["read"]["stretch"]["low"], np.percentile(data.reshape(3, -1), 2, axis=1))


@pytest.mark.parametrize("dtype", ["uint16", "int16", "float64"])
def test_data_types_are_stretched_by_scene_percentiles(tmp_path: Path, dtype: str) -> None:
    scene = C.typed(tmp_path, dtype)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS), out)
    assert len(tiles(out)) == 12
    stretch = read_metadata(out)["read"]["stretch"]
    with rasterio.open(scene) as ds:  # smaller than the sample side: the percentiles are exact
        data = ds.read().reshape(3, -1).astype(np.float64)
    assert stretch["kind"] == "percentile"
    np.testing.assert_allclose(stretch["low"], np.percentile(data, 2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(stretch["high"], np.percentile(data, 98, axis=1), rtol=1e-6)
    if dtype == "int16":
        assert min(stretch["low"]) < 0  # negative values are data, not nodata


def test_float32_nan_is_nodata(tmp_path: Path) -> None:
    scene = C.typed(tmp_path, "float32", nan_block=True)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS), out)
    gdf = tiles(out)
    assert gdf.tile_id.tolist() == [t for t in range(12) if t != 6]  # row 1, col 2 is all NaN
    stretch = read_metadata(out)["read"]["stretch"]
    with rasterio.open(scene) as ds:
        data = ds.read().reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(stretch["low"], np.nanpercentile(data, 2, axis=1), rtol=1e-5)


# -- validity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_all_nodata_is_one_line(tmp_path: Path, dtype: str) -> None:
    scene = C.all_nodata(tmp_path, dtype)
    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), scene.name, "no valid pixel", code=2)
    assert_nothing_written(out)


def test_all_nodata_uint8_is_one_line(tmp_path: Path) -> None:
    scene = C.all_nodata(tmp_path, "uint8")
    out = tmp_path / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), "valid", code=2)
    assert_nothing_written(out)


@pytest.mark.parametrize(
    "make, mask",
    [
        (C.nodata_edges, C.edge_valid_mask()),
        (C.internal_mask, C.left_half_invalid()),
        (C.alpha_band, C.left_half_invalid()),
    ],
    ids=["nodata-edges", "internal-mask", "alpha-band"],
)
def test_invalid_pixels_are_counted_and_empty_chips_skipped(tmp_path: Path, make: Maker, mask: np.ndarray) -> None:
    scene = make(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS), out)
    kept = expected_kept(mask)
    gdf = tiles(out)
    assert gdf.tile_id.tolist() == sorted(kept)
    np.testing.assert_allclose(gdf.valid_fraction, [kept[t] for t in gdf.tile_id], atol=1e-6)
    assert tiles(out, "landcover").tile_id.tolist() == sorted(kept)


def test_nodata_edges_with_a_lower_min_valid_keep_the_edge_chips(tmp_path: Path) -> None:
    scene = C.nodata_edges(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out, *CHIPS, "--min-valid", "0.1"), out)
    assert tiles(out).tile_id.tolist() == sorted(expected_kept(C.edge_valid_mask(), min_valid=0.1))


# -- sizes ---------------------------------------------------------------------------------------


def test_scene_smaller_than_a_chip_gives_one_chip_covering_it(tmp_path: Path) -> None:
    scene = C.small(tmp_path, 40, 30)
    out = tmp_path / "out.gpkg"
    # the model's input size (224) is larger than the scene; the default chip warns that it gives one tile
    assert_ok(classify(scene, out), out, warnings=[few_tiles_warning(scene, 1)])
    gdf = tiles(out)
    assert gdf.tile_id.tolist() == [0]
    np.testing.assert_allclose(ring(gdf.geometry[0]), window_ring(C.TRANSFORM, 0, 0, 40, 30))
    assert_one_line_error(classify(scene, tmp_path / "b.gpkg", "--chip-size", "64"), "larger than the scene", "--chip-size", code=2)


@pytest.mark.parametrize("make, width, height", [(C.one_pixel_wide, 1, 300), (C.one_pixel_tall, 300, 1)], ids=["1xN", "Nx1"])
def test_one_pixel_wide_scenes(tmp_path: Path, make: Maker, width: int, height: int) -> None:
    scene = make(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(classify(scene, out), out, warnings=[few_tiles_warning(scene, 2)])
    gdf = tiles(out)
    # chips of 224 along the long side, shifted to end at the edge; the short side is clamped to 1 pixel
    assert gdf.tile_id.tolist() == [0, 1]
    offsets = [0, 300 - 224]
    for t, off in zip(gdf.itertuples(), offsets):
        col, row = (0, off) if width == 1 else (off, 0)
        w, h = (1, 224) if width == 1 else (224, 1)
        np.testing.assert_allclose(ring(t.geometry), window_ring(C.TRANSFORM, col, row, w, h))


def test_sparse_scene_keeps_exactly_the_chips_with_data(tmp_path: Path) -> None:
    windows = [Window(1024, 1536, 512, 512), Window(4096, 512, 512, 512), Window(2816, 4096, 512, 512)]
    scene = C.sparse(tmp_path, 6144, data_windows=windows)
    out = tmp_path / "out.gpkg"
    assert_ok(rsgeo("embed", scene, "-o", out, *MODEL, "--chip-size", "512"), out)
    # chips are 512 px on a 12 x 12 grid; the third window straddles two chips, half in each
    expected = {3 * 12 + 2: 1.0, 1 * 12 + 8: 1.0, 8 * 12 + 5: 0.5, 8 * 12 + 6: 0.5}
    gdf = tiles(out)
    assert dict(zip(gdf.tile_id, gdf.valid_fraction)) == pytest.approx(expected)


@pytest.fixture(scope="module")
def huge_sparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 x 200,000 pixels declared (120 GB of uint16), three small patches written."""
    windows = [Window(0, 0, 1024, 1024), Window(100_000, 100_000, 1024, 1024), Window(40_000, 150_000, 1024, 1024)]
    return C.sparse(tmp_path_factory.mktemp("huge"), 200_000, data_windows=windows)


def test_huge_sparse_scene_opens_and_samples_its_stretch_in_bounded_time(huge_sparse: Path) -> None:
    assert huge_sparse.stat().st_size < 20 * 2**20
    start = time.monotonic()
    with Scene(huge_sparse, ReadOptions(chip_size=224)) as scene:
        grid = scene.grid(224)
        # A plain decimated read of this file takes over a minute and a GB of memory.
        elapsed = time.monotonic() - start
        assert elapsed < 15, f"opening and sampling the stretch took {elapsed:.1f} s"
        assert len(grid) == (math.ceil((200_000 - 224) / 224) + 1) ** 2
        # the stretch was estimated from the written patches, not from the nodata around them
        assert scene.stretch.kind == "percentile"
        assert all(1000 <= lo < hi <= 1170 for lo, hi in zip(scene.stretch.low, scene.stretch.high))
        # all-empty chips read as invalid (skipped as nodata), chips on data as valid
        _, valid = scene.read_chip(grid.chip(grid.n_cols * 10 + 10).window)
        assert not valid.any()
        _, valid = scene.read_chip(grid.chip(0).window)
        assert valid.all()


def test_huge_sparse_stretch_sample_reads_few_blocks(huge_sparse: Path) -> None:
    reads: list[Window] = []
    with rasterio.open(huge_sparse) as ds:
        real_read = ds.read

        def counting_read(*args, **kwargs):
            window = kwargs.get("window")
            assert window is not None, "a read of the whole scene"
            reads.append(window)
            return real_read(*args, **kwargs)

        ds.read = counting_read  # type: ignore[method-assign]
        compute_stretch(ds, (1, 2, 3))
    assert 0 < len(reads) <= 256
    assert sum(w.width * w.height for w in reads) <= 256 * 512 * 512


def test_huge_sparse_scene_with_a_too_large_chip_is_one_line(huge_sparse: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    start = time.monotonic()
    assert_one_line_error(rsgeo("embed", huge_sparse, "-o", out, *MODEL, "--chip-size", "300000"), "larger than the scene", code=2)
    assert time.monotonic() - start < 30
    assert_nothing_written(out)


def test_path_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    scene = C.odd_path(tmp_path)
    out = tmp_path / "résultats été" / "carte des sols – 1.gpkg"
    out.parent.mkdir()
    assert_ok(classify(scene, out, *CHIPS), out)
    assert read_metadata(out)["scene"]["path"] == str(scene.resolve())
    assert len(tiles(out)) == 12
    # and an encoded result in such a folder answers further questions in place
    proc = rsgeo("query", out, "--text", "un port de pêche")
    assert proc.returncode == 0, proc.stderr
    assert any(name.startswith("query_") for name, _ in pyogrio.list_layers(out))


# -- bad options ------------------------------------------------------------------------------------

BAD_OPTIONS = [
    # (id, arguments after the scene, words the message must hold)
    ("unknown-model", ["--model", "no-such-model", *CLASSES], ["unknown model", "no-such-model", "rs-m-clip"]),
    ("empty-classes", [*MODEL, "--classes", ""], ["no class names", "--classes"]),
    ("blank-class", [*MODEL, "--classes", "forest, ,water"], ["blank", "--classes"]),
    ("empty-class", [*MODEL, "--classes", "forest,,water"], ["blank"]),
    ("duplicate-class", [*MODEL, "--classes", "forest,water,Forest"], ["given twice", "forest"]),
    ("one-class", [*MODEL, "--classes", "forest"], ["at least two classes"]),
    ("no-classes", [*MODEL], ["--classes", "--class-set"]),
    ("unknown-class-set", [*MODEL, "--class-set", "no-such-set"], ["unknown class set", "no-such-set", "eurosat"]),
    ("chip-size-zero", [*MODEL, *CLASSES, "--chip-size", "0"], ["--chip-size", "positive"]),
    ("chip-size-negative", [*MODEL, *CLASSES, "--chip-size=-64"], ["--chip-size", "positive"]),
    ("chip-size-zero-metres", [*MODEL, *CLASSES, "--chip-size", "0m"], ["--chip-size", "positive", "0m"]),
    ("chip-size-negative-metres", [*MODEL, *CLASSES, "--chip-size=-500m"], ["--chip-size", "positive"]),
    ("chip-size-below-a-pixel", [*MODEL, *CLASSES, "--chip-size", "2m"], ["less than one pixel", "10 m"]),
    ("chip-size-infinite", [*MODEL, *CLASSES, "--chip-size", "infm"], ["--chip-size", "positive"]),
    ("chip-size-not-a-number", [*MODEL, *CLASSES, "--chip-size", "big"], ["pixels (224) or metres"]),
    ("chip-size-larger-than-scene", [*MODEL, *CLASSES, "--chip-size", "1000"], ["1000 px", "larger than the scene", "256 x 192"]),
    ("chip-size-metres-larger-than-scene", [*MODEL, *CLASSES, "--chip-size", "5000m"], ["larger than the scene"]),
    ("stride-zero", [*MODEL, *CLASSES, *CHIPS, "--stride", "0"], ["--stride", "positive"]),
    ("stride-negative", [*MODEL, *CLASSES, *CHIPS, "--stride=-8"], ["--stride", "positive"]),
    ("stride-larger-than-chip", [*MODEL, *CLASSES, *CHIPS, "--stride", "100"], ["stride 100", "larger than the chip size"]),
    ("stride-larger-than-scene", [*MODEL, *CLASSES, *CHIPS, "--stride", "500"], ["stride 500", "larger than the chip"]),
    ("overlap-one", [*MODEL, *CLASSES, "--overlap", "1"], ["overlap", "[0, 1)"]),
    ("band-out-of-range", [*MODEL, *CLASSES, "--bands", "5,3,2"], ["band 5", "3 band(s)"]),
    ("band-zero", [*MODEL, *CLASSES, "--bands", "0"], ["band 0", "numbered 1 to 3"]),
    ("two-bands", [*MODEL, *CLASSES, "--bands", "1,2"], ["1 or 3 bands"]),
    ("bands-not-numbers", [*MODEL, *CLASSES, "--bands", "red,green,blue"], ["band numbers"]),
    ("unknown-stretch", [*MODEL, *CLASSES, "--stretch", "magic"], ["unknown stretch", "percentile:2,98"]),
    ("stretch-range-nan", [*MODEL, *CLASSES, "--stretch", "range:nan,5"], ["two increasing numbers"]),
    ("min-valid-zero", [*MODEL, *CLASSES, "--min-valid", "0"], ["--min-valid"]),
    ("gsd-negative", [*MODEL, *CLASSES, "--gsd=-10"], ["--gsd", "positive"]),
    ("gsd-far-too-fine", [*MODEL, *CLASSES, "--gsd", "0.001"], ["--gsd 0.001", "finer", "at least"]),
    ("batch-size-zero", [*MODEL, *CLASSES, "--batch-size", "0"], ["--batch-size"]),
    ("workers-zero", [*MODEL, *CLASSES, "--workers", "0"], ["--workers"]),
    ("blank-layer", [*MODEL, *CLASSES, "--layer", " "], ["--layer", "blank"]),
    ("template-without-braces", [*MODEL, *CLASSES, "--template", "a photo"], ["template", "{}"]),
    ("missing-templates-file", [*MODEL, *CLASSES, "--templates-file", "no-such-file.txt"], ["--templates-file", "no-such-file.txt"]),
]


@pytest.mark.parametrize("args, words", [(a, w) for _, a, w in BAD_OPTIONS], ids=[i for i, _, _ in BAD_OPTIONS])
def test_bad_option_is_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    scene = C.rgb(tmp_path)
    out = tmp_path / "out.gpkg"
    proc = rsgeo("classify", scene, "-o", out, *args, timeout=120)
    assert_one_line_error(proc, *words, code=2)
    assert_nothing_written(out)


BAD_QUERY_OPTIONS = [
    ("no-text", [], ["--text"]),
    ("blank-text", ["--text", "  "], ["blank"]),
    ("top-k-zero", ["--text", "harbour", "--top-k", "0"], ["--top-k"]),
    ("threshold-out-of-range", ["--text", "harbour", "--threshold", "2"], ["--threshold", "[-1, 1]"]),
    ("example-tile-outside-grid", ["--like-tile", "9999", *CHIPS], ["tile 9999"]),
    ("example-location-unreadable", ["--like", "somewhere", *CHIPS], ["cannot read location", "somewhere"]),
]


@pytest.mark.parametrize("args, words", [(a, w) for _, a, w in BAD_QUERY_OPTIONS], ids=[i for i, _, _ in BAD_QUERY_OPTIONS])
def test_bad_query_option_is_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    scene = C.rgb(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_one_line_error(rsgeo("query", scene, "-o", out, *MODEL, *args), *words, code=2)
    assert_nothing_written(out)


# -- outputs ------------------------------------------------------------------------------------------


def test_output_in_a_missing_folder(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "folder" / "out.gpkg"
    assert_one_line_error(classify(C.rgb(tmp_path), out, *CHIPS), "does not exist", "create it", code=1)
    assert not out.parent.exists()


@pytest.mark.parametrize(
    "name, words", [("out.shp", ["must end in .gpkg"]), ("a-folder.gpkg", ["is a folder"])], ids=["not-gpkg", "folder"]
)
def test_output_that_is_not_a_geopackage_path(tmp_path: Path, name: str, words: list[str]) -> None:
    (tmp_path / "a-folder.gpkg").mkdir()
    assert_one_line_error(classify(C.rgb(tmp_path), tmp_path / name, *CHIPS, "--overwrite"), *words, code=1)
    assert (tmp_path / "a-folder.gpkg").is_dir() and not (tmp_path / "out.shp").exists()


@pytest.mark.parametrize("command", ["classify", "query", "embed"])
def test_existing_output_is_never_replaced_without_overwrite(tmp_path: Path, command: str) -> None:
    scene = C.rgb(tmp_path)
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"my precious results, not even a GeoPackage")
    before = fingerprint(out)
    time.sleep(0.01)
    extra = {"classify": CLASSES, "query": ["--text", "harbour"], "embed": []}[command]
    proc = rsgeo(command, scene, "-o", out, *MODEL, *CHIPS, *extra)
    assert_one_line_error(proc, str(out), "already exists", "--overwrite", code=1)
    assert fingerprint(out) == before
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_and_a_failed_overwrite_keeps(tmp_path: Path) -> None:
    scene = C.rgb(tmp_path)
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"old")
    assert_ok(classify(scene, out, *CHIPS, "--overwrite"), out)
    before = fingerprint(out)
    # failures leave the previous result as it was (failures mid-run: test_truncated_tiles_...)
    assert_one_line_error(classify(scene, out, *CHIPS, "--overwrite", "--bands", "9"), "band 9", code=2)
    assert_one_line_error(classify(C.no_crs(tmp_path), out, *CHIPS, "--overwrite"), "no CRS", code=2)
    assert fingerprint(out) == before


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write to: immutable for root (root ignores permission
    bits), mode 0555 for anyone else."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "earlier.gpkg").write_bytes(b"an earlier result")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
            pytest.skip("running as root and `chattr +i` is not available: cannot make a folder read-only")
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = None
    try:
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"")  # really read-only, for this process too
        yield folder
    finally:
        if undo:
            subprocess.run(undo, check=True)
        else:
            folder.chmod(0o755)


def test_output_in_a_read_only_folder(tmp_path: Path, read_only_dir: Path) -> None:
    out = read_only_dir / "out.gpkg"
    assert_one_line_error(classify(C.rgb(tmp_path), out, *CHIPS), "not writable", "another -o", code=1)
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["earlier.gpkg"]
    before = fingerprint(read_only_dir / "earlier.gpkg")
    proc = classify(C.rgb(tmp_path), read_only_dir / "earlier.gpkg", *CHIPS, "--overwrite")
    assert_one_line_error(proc, "not writable", code=1)
    assert fingerprint(read_only_dir / "earlier.gpkg") == before


def test_output_file_that_cannot_be_replaced(tmp_path: Path) -> None:
    scene = C.rgb(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(rsgeo("embed", scene, "-o", out, *MODEL, *CHIPS), out)
    before = fingerprint(out)
    if os.geteuid() != 0 or subprocess.run(["chattr", "+i", str(out)], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs root and `chattr +i` to make a file that cannot be replaced")
    try:
        proc = rsgeo("embed", scene, "-o", out, *MODEL, *CHIPS, "--overwrite")
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert_one_line_error(proc, "cannot write", "left as it was", code=1)
    assert fingerprint(out) == before
    assert leftovers(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, small filesystem (a 4 MiB tmpfs) to fill up; needs root and mount."""
    folder = tmp_path / "tiny-disk"
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({proc.stderr.strip()}); see test_atomic_output_disk_full_seam")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(disk: Path, leave_kib: int) -> Path:
    """Fill ``disk`` but for ``leave_kib``; returns the ballast file."""
    st = os.statvfs(disk)
    ballast = disk / "ballast"
    ballast.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave_kib * 1024))
    return ballast


def test_disk_full_before_the_journal_is_written(tmp_path: Path, tiny_disk: Path) -> None:
    scene = C.rgb(tmp_path)
    fill(tiny_disk, 16)
    out = tiny_disk / "out.gpkg"
    assert_one_line_error(classify(scene, out, *CHIPS), "disk is full", "free some space", "--resume", code=1)
    assert_nothing_written(out)


def test_disk_full_while_writing_the_output_then_resume(tmp_path: Path, tiny_disk: Path) -> None:
    """The disk fills up after every chip is encoded: one line, no output, the
    journal is kept, and once there is room --resume finishes without encoding again."""
    scene = C.rgb(tmp_path)
    reference = tmp_path / "reference.gpkg"
    assert_ok(classify(scene, reference, *CHIPS), reference)
    out = tiny_disk / "out.gpkg"
    # a complete journal: a run killed as soon as it starts writing the output
    args = [sys.executable, "-m", "rsgeo", "classify", str(scene), "-o", str(out), *MODEL, *CLASSES, *CHIPS, "--progress", "none"]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    tmp = out.with_name(f".out.tmp-{proc.pid}.gpkg")
    while not tmp.exists() and proc.poll() is None:
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    assert proc.returncode == -9, "the run finished before it could be stopped at the output"
    for leftover in tiny_disk.glob(".out.tmp-*"):
        leftover.unlink()
    journal = out.with_name(out.name + ".rsgeo-partial")
    assert journal.exists()

    ballast = fill(tiny_disk, 96)  # room to reopen the journal, not to write the GeoPackage
    assert_one_line_error(classify(scene, out, *CHIPS, "--resume"), "disk is full", "while writing", "nothing was written", code=1)
    assert_nothing_written(out)
    assert journal.exists(), "the journal must survive a full disk"

    ballast.unlink()
    resumed = rsgeo("classify", scene, "-o", out, *MODEL, *CLASSES, *CHIPS, "--resume", "-v")
    assert resumed.returncode == 0, resumed.stderr
    assert "encoded 0 chips in this run" in resumed.stderr
    for layer in ("tiles", "landcover"):
        a, b = tiles(out, layer), tiles(reference, layer)
        assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
        assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()


def test_disk_full_while_adding_layers_keeps_the_result(tmp_path: Path, tiny_disk: Path) -> None:
    result = tiny_disk / "result.gpkg"
    assert_ok(rsgeo("embed", C.rgb(tmp_path), "-o", result, *MODEL, *CHIPS), result)
    fill(tiny_disk, 16)
    before = fingerprint(result)
    assert_one_line_error(rsgeo("classify", result, *CLASSES), "disk is full", "left as it was", code=1)
    assert fingerprint(result) == before
    assert leftovers(tiny_disk) == []


def test_atomic_output_disk_full_seam(tmp_path: Path) -> None:
    """Where no small filesystem can be mounted: an ENOSPC raised while the
    layers are written (the seam is the body of ``atomic_output``)."""
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"previous result")
    before = fingerprint(out)
    with pytest.raises(OutputError, match="disk is full.*left as it was"), atomic_output(out) as tmp:
        tmp.write_bytes(b"half a GeoPackage")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
    assert fingerprint(out) == before
    assert leftovers(tmp_path) == []


def test_temporary_file_of_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    scene = C.rgb(tmp_path)
    out = tmp_path / "out.gpkg"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = tmp_path / f".out.tmp-{int(dead.stdout)}.gpkg"
    stale.write_bytes(b"half written by a run that was killed")
    other = tmp_path / ".other.tmp-1.gpkg"  # pid 1 is alive and this is not our output
    other.write_bytes(b"someone else's")
    alive = tmp_path / ".out.tmp-1.gpkg"  # pid 1 is running: maybe a run writing the same output
    alive.write_bytes(b"in progress elsewhere")
    assert_ok(classify(scene, out, *CHIPS), out)
    assert not stale.exists()
    assert other.exists() and alive.exists()


# -- zones (issue 19) ---------------------------------------------------------------------------------------

BAD_ZONES = [
    # (id, maker, words the message must hold)
    ("zones-without-crs", C.zones_without_crs, ["no_crs_zones.gpkg", "no CRS", "ogr2ogr -a_srs"]),
    ("zones-elsewhere", C.zones_elsewhere, ["none of the 1 zones", "overlaps rgb.tif", "check the zones' CRS"]),
    ("zones-with-a-status-attribute", C.zones_with_status, ["'status'", "a column rsgeo writes", "rename it"]),
]


@pytest.mark.parametrize("make, words", [(m, w) for _, m, w in BAD_ZONES], ids=[i for i, _, _ in BAD_ZONES])
@pytest.mark.parametrize("command", ["embed", "classify"])
def test_bad_zones_are_one_line(tmp_path: Path, make: Maker, words: list[str], command: str) -> None:
    out = tmp_path / "out.gpkg"
    extra = CLASSES if command == "classify" else []
    proc = rsgeo(command, C.rgb(tmp_path), "--zones", f"{make(tmp_path)}:zones", "-o", out, *MODEL, *CHIPS, *extra)
    assert_one_line_error(proc, *words, code=2)
    assert_nothing_written(out)


def test_zones_over_nodata_are_reported_not_scored(tmp_path: Path) -> None:
    """A zone over nodata pixels gets status no_data; the zone beside it is scored from its valid pixels."""
    mask = np.ones((C.HEIGHT, C.WIDTH), bool)
    mask[:, :60] = False  # the first zone (columns 20-50) lies in nodata; the second (40-140) a fifth in it
    scene = C.write(tmp_path / "masked.tif", C.pattern(3, C.HEIGHT, C.WIDTH), mask=mask)
    out = tmp_path / "zones_out.gpkg"
    proc = rsgeo("embed", scene, "--zones", C.zones(tmp_path), "-o", out, *MODEL, *CHIPS)
    assert_ok(proc, out, warnings=["rsgeo: WARNING: 1 of 2 zones not scored (too small or no data): see the status column"])
    zones = pyogrio.read_dataframe(out, layer="zones")
    assert zones["status"].tolist() == ["no_data", "ok"]
    assert zones["valid_fraction"].tolist() == pytest.approx([0.0, 0.8], abs=0.02)
    assert zones["n_chips"].tolist() == [1, 4]
