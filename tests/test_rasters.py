"""Raster outputs and the cells layer (issue 13): the nearest-chip-centre rule, palette, COG validity, partition."""

from __future__ import annotations

import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

import rsgeo
from rsgeo.definitions import schema
from rsgeo.encoders.testing import HashEncoder
from rsgeo.gpkg import read_metadata
from rsgeo.metadata import grid_from_metadata
from rsgeo.options import RunOptions
from rsgeo.scene import ReadOptions
from tests.conftest import run_cli, shared

CLASSES = ["forest", "water", "urban area"]
COLUMNS = ["forest", "water", "urban_area"]


def _options(**kw: object) -> RunOptions:
    return RunOptions(encoder=HashEncoder(size=64), **kw)  # type: ignore[arg-type]


def _expected_tile(grid: rsgeo.grid.ChipGrid, raster: rasterio.DatasetReader) -> np.ndarray:
    """Brute force, independent of rsgeo.rasters: per raster cell, the covering chip whose centre is nearest.

    Cell centres go to world coordinates through the raster's own transform and back to scene
    pixels through the scene's; distances are Euclidean in scene pixels; a tie goes to the later chip.
    """
    rows, cols = np.mgrid[0 : raster.height, 0 : raster.width]
    wx, wy = raster.transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    px, py = ~grid.transform * (np.asarray(wx), np.asarray(wy))
    chips = list(grid)
    x0 = np.array([c.window.col_off for c in chips], float)
    y0 = np.array([c.window.row_off for c in chips], float)
    w = np.array([c.window.width for c in chips], float)
    h = np.array([c.window.height for c in chips], float)
    px, py = np.asarray(px)[:, None], np.asarray(py)[:, None]
    d2 = (px - (x0 + w / 2)) ** 2 + (py - (y0 + h / 2)) ** 2
    # a cell centre beyond the scene's last pixel (the coarse grid's last row/column) is clamped onto the scene
    cx, cy = np.clip(px, 0, grid.width - 1e-9), np.clip(py, 0, grid.height - 1e-9)
    covers = (cx >= x0) & (cx < x0 + w) & (cy >= y0) & (cy < y0 + h)
    d2 = np.where(covers, d2, np.inf)
    best = d2.min(axis=1, keepdims=True)
    tied = np.isclose(d2, best, rtol=0, atol=1e-9)
    ids = np.where(tied, np.arange(len(chips))[None, :], -1).max(axis=1)
    assert np.isfinite(best).all()
    return ids.reshape(raster.height, raster.width)


def _check_classify_rasters(out: Path) -> tuple[int, int]:
    """Every raster cell equals the score of its chip by the documented rule; returns (scored, nodata) cells."""
    meta = read_metadata(out)
    grid = grid_from_metadata(meta)
    records = {r["kind"]: (name, r) for name, r in meta[schema.KEY_RASTERS].items()}
    assert set(records) == {schema.RASTER_TOP_CLASS, schema.RASTER_SCORES}
    layer = pyogrio.read_dataframe(out, layer="landcover").set_index("tile_id")
    class_path = out.parent / records[schema.RASTER_TOP_CLASS][1]["path"]
    score_path = out.parent / records[schema.RASTER_SCORES][1]["path"]
    assert records[schema.RASTER_SCORES][1]["bands"] == CLASSES
    for p in (class_path, score_path):
        valid, errors, _ = cog_validate(str(p))
        assert valid, (p, errors)
    with rasterio.open(class_path) as cls_ds, rasterio.open(score_path) as sc_ds:
        assert cls_ds.crs == grid.crs == sc_ds.crs and cls_ds.transform == sc_ds.transform
        expected = _expected_tile(grid, cls_ds)
        top, scores = cls_ds.read(1), sc_ds.read()
        assert sc_ds.descriptions == tuple(CLASSES) and cls_ds.nodata == 255 and np.isnan(sc_ds.nodata)
    scored = np.isin(expected, layer.index.to_numpy())
    names = layer["top_class"].map({c: i for i, c in enumerate(CLASSES)})
    want_top = np.where(scored, names.reindex(expected.ravel()).fillna(255).to_numpy().reshape(expected.shape), 255)
    np.testing.assert_array_equal(top, want_top.astype(np.uint8))
    for band, col in enumerate(COLUMNS):
        want = layer[col].reindex(expected.ravel()).to_numpy(np.float32).reshape(expected.shape)
        np.testing.assert_array_equal(scores[band], np.where(scored, want, np.nan))
    return int(scored.sum()), int((~scored).sum())


def test_raster_cells_take_the_nearest_chip_on_a_scene_with_nodata(tmp_path: Path) -> None:
    out = tmp_path / "rgb.gpkg"
    rsgeo.classify(shared("RGB.byte.tif"), out, classes=CLASSES, read=ReadOptions(chip_size="64", overlap=0.5),
                   options=_options())
    scored, nodata = _check_classify_rasters(out)
    assert scored > 100 and nodata > 10  # RGB.byte.tif's nodata corners leave cells without a chip
    meta = read_metadata(out)
    rec = meta[schema.KEY_RASTERS]["landcover_class"]
    assert rec["path"] == "rgb_landcover_class.tif" and rec["cell_px"] == 16  # gcd(stride 32, (64 + 32) / 2)
    # palette = the landcover layer's style colours, category names = the classes
    with sqlite3.connect(out) as db:
        qml = db.execute("SELECT styleQML FROM layer_styles WHERE f_table_name='landcover'").fetchone()[0]
    style = dict(re.findall(r'<category[^>]*symbol="(\d+)"[^>]*value="([^"]+)"', qml))
    colours = {int(s): tuple(int(v) for v in c.split(",")[:3])
               for s, c in re.findall(r'<symbol type="fill" name="(\d+)".*?name="color" type="QString" value="([\d,]+)"', qml)}
    class_tif = out.parent / rec["path"]
    with rasterio.open(class_tif) as ds:
        cmap = ds.colormap(1)
    for symbol, name in style.items():
        assert cmap[CLASSES.index(name)][:3] == colours[int(symbol)]
    cats = ET.parse(str(class_tif) + ".aux.xml").findall("./PAMRasterBand/CategoryNames/Category")
    assert [c.text for c in cats] == CLASSES
    labels = re.findall(r'<paletteEntry value="(\d)"[^>]*label="([^"]+)"', class_tif.with_suffix(".qml").read_text())
    assert labels == [(str(i), c) for i, c in enumerate(CLASSES)]


def test_raster_cells_on_a_rotated_geotransform(tmp_path: Path) -> None:
    scene = tmp_path / "rotated.tif"
    with rasterio.open(shared("L7_ETMs.tif")) as src:
        data, profile = src.read(window=((0, 200), (0, 230))), src.profile
        rotated = Affine.translation(src.transform.c, src.transform.f) * Affine.rotation(25) * Affine.scale(28.5, -28.5)
    profile.update(width=230, height=200, transform=rotated)
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
    out = tmp_path / "rot.gpkg"
    rsgeo.classify(scene, out, classes=CLASSES, read=ReadOptions(chip_size="64", stride="48", bands=(3, 2, 1)), options=_options())
    rec = read_metadata(out)[schema.KEY_RASTERS]["landcover_scores"]
    assert rec["cell_px"] == 48  # gcd(48, 56) = 8 is under a quarter of the stride: the stride
    with rasterio.open(out.parent / rec["path"]) as ds:
        assert ds.transform.almost_equals(rotated * Affine.scale(48))
        assert (ds.width, ds.height) == (5, 5)
    scored, nodata = _check_classify_rasters(out)
    assert (scored, nodata) == (25, 0)  # no nodata in L7_ETMs.tif: every cell has its chip


def test_cells_partition_the_scene_with_overlap(tmp_path: Path) -> None:
    import shapely

    out = tmp_path / "l7.gpkg"
    rsgeo.embed(shared("L7_ETMs.tif"), out, read=ReadOptions(chip_size="64", overlap=0.3, bands=(3, 2, 1)), options=_options())
    grid = grid_from_metadata(read_metadata(out))
    cells = pyogrio.read_dataframe(out, layer="cells").sort_values("tile_id")
    tiles = pyogrio.read_dataframe(out, layer="tiles").sort_values("tile_id")
    assert len(cells) == len(grid) and (cells["tile_id"].to_numpy() == tiles["tile_id"].to_numpy()).all()
    t = grid.transform
    scene_area = abs(t.a * t.e - t.b * t.d) * grid.width * grid.height
    assert tiles.geometry.area.sum() > 1.3 * scene_area  # the chips overlap ...
    assert cells.geometry.area.sum() == pytest.approx(scene_area, rel=1e-9)  # ... their cells do not
    assert shapely.union_all(cells.geometry.values).area == pytest.approx(scene_area, rel=1e-9)
    for cell, tile in zip(cells.geometry.values, tiles.geometry.values):
        assert cell.buffer(-1e-6).within(tile)  # each cell is the part of its own chip


def test_query_rasters_stored_runs_no_rasters_and_overwrite(tmp_path: Path) -> None:
    scene = shared("RGB.byte.tif")
    read = ReadOptions(chip_size="64")
    embedded = tmp_path / "e.gpkg"
    rsgeo.embed(scene, embedded, read=read, options=_options())
    assert schema.KEY_RASTERS in read_metadata(embedded) and read_metadata(embedded)[schema.KEY_RASTERS] == {}
    rsgeo.query(embedded, texts=["coral reef"], top_k=5, options=_options())  # in place, stored embeddings
    meta = read_metadata(embedded)
    rec = meta[schema.KEY_RASTERS]["query_coral_reef_similarity"]
    assert rec["bands"] == ["coral reef"] and rec["layer"] == "query_coral_reef"
    with rasterio.open(tmp_path / rec["path"]) as ds:
        sim = ds.read(1)
    assert cog_validate(str(tmp_path / rec["path"]))[0]
    # the raster maps every scored tile (not only the top 5); cell = stride here: one raster cell per chip
    grid = grid_from_metadata(meta)
    assert sim.shape == (grid.n_rows, grid.n_cols)
    result = rsgeo.open_result(embedded, encoder=HashEncoder(size=64))
    full = result.query("coral reef")
    want = np.full(len(grid), np.nan, np.float32)
    want[full["tile_id"].to_numpy()] = full["similarity"].to_numpy()
    np.testing.assert_allclose(sim.ravel(), want, rtol=0, atol=1e-6)
    # the same map from the in-memory API
    path = result.similarity_raster("coral reef", tmp_path / "api.tif")
    with rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(1), sim)
    # rewriting the layer without rasters drops its raster; a fresh --overwrite run removes stale ones
    rsgeo.query(embedded, texts=["coral reef"], top_k=5, options=_options(no_rasters=True))
    assert read_metadata(embedded)[schema.KEY_RASTERS] == {} and not (tmp_path / rec["path"]).exists()
    out = tmp_path / "c.gpkg"
    rsgeo.classify(scene, out, classes=CLASSES, layer="a", read=read, options=_options())
    assert (tmp_path / "c_a_class.tif").exists() and (tmp_path / "c_a_class.qml").exists()
    rsgeo.classify(scene, out, classes=CLASSES, layer="b", read=read, options=_options(overwrite=True))
    names = sorted(p.name for p in tmp_path.glob("c_*"))
    assert names == ["c_b_class.qml", "c_b_class.tif", "c_b_class.tif.aux.xml", "c_b_scores.qml", "c_b_scores.tif"]


def test_too_many_classes_for_the_palette_are_refused_up_front(tmp_path: Path) -> None:
    scene = tmp_path / "s.tif"
    shutil.copyfile(shared("L7_ETMs.tif"), scene)
    many = ",".join(f"class {i}" for i in range(256))
    out = tmp_path / "o.gpkg"
    proc = run_cli("classify", str(scene), "-o", str(out), "--classes", many, "--model", "test:hash", "--bands", "3,2,1", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--no-rasters" in proc.stderr and "255" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]
