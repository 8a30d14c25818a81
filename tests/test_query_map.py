"""A query answered as a map (the QGIS panel's path for large results, issue 13).

On a real scene with nodata (RGB.byte.tif, chips skipped as nodata) embedded by the
test encoder: the COG's cell at each tile's centre holds that tile's similarity as the
tile-by-tile query computes it, unscored chips are nodata, the top tiles are the
query's top tiles, and ``tile_at`` finds a tile from a point. The worker's protocol
carries the same answer. A synthetic result of random 512-d vectors
(``benchmarks/synthetic_result.py``) opens with the 512-d test encoder its metadata names.
"""

from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

import rsgeo
from rsgeo.query_map import ramp_breaks, top_rows
from rsgeo.worker import Worker
from tests.conftest import run_cli, shared

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("map") / "rgb.gpkg"
    run_cli("embed", str(shared("RGB.byte.tif")), "-o", str(out), "--model", "test:hash", "--chip-size", "64", "-q")
    return out


def _sample(path: Path, points: np.ndarray) -> np.ndarray:
    with rasterio.open(path) as ds:
        return np.array([v[0] for v in ds.sample([tuple(p) for p in points])])


def test_map_cells_hold_the_tiles_similarities(embedded: Path, tmp_path: Path) -> None:
    result = rsgeo.open_result(embedded)
    answer = result.query_map("turquoise shallow water", tmp_path / "answer.tif", top_k=7)
    frame = result.query("turquoise shallow water")  # every stored tile, the tile-by-tile path
    assert answer.scored == len(frame) < len(result.grid)  # some chips were nodata
    assert answer.tile_ids.tolist() == frame["tile_id"].head(7).tolist()
    assert np.allclose(answer.similarity, frame["similarity"].head(7), atol=1e-6)
    # Every stored tile's cell, sampled at its centre, holds its similarity. (Next to the shifted last
    # chip of a row or column a raster cell may straddle two chips' cells, then its own centre decides:
    # rsgeo.rasters; tests/test_rasters.py checks that rule, so those chips are left out here.)
    centres = np.array([(g.centroid.x, g.centroid.y) for g in frame.geometry])
    assert np.allclose(answer.centres, centres[:7])
    grid = result.grid

    def interior(tile: int) -> bool:
        row, col = divmod(tile, grid.n_cols)
        return row < grid.n_rows - 2 and col < grid.n_cols - 2

    inner = np.array([interior(t) for t in frame["tile_id"]])
    assert inner.sum() > 50
    assert np.allclose(_sample(answer.path, centres[inner]), frame["similarity"][inner], atol=1e-6)
    # Chips with no embedding are nodata.
    missing = [t for t in sorted(set(range(len(grid))) - set(frame["tile_id"].tolist())) if interior(t)]
    holes = np.array([np.mean(grid.chip(t).corners, axis=0) for t in missing])
    assert len(holes) and np.isnan(_sample(answer.path, holes)).all()
    with rasterio.open(answer.path) as ds:
        assert ds.crs is not None and ds.descriptions == ("turquoise shallow water",)
    # tile_at: a centre gives its tile, a nodata chip and a point off the scene give None.
    assert [result.tile_at(x, y) for x, y in centres[:20]] == frame["tile_id"].head(20).tolist()
    assert result.tile_at(*holes[0]) is None
    left, _bottom, _right, top = result.grid.chip(0).bounds
    assert result.tile_at(left - 1.0, top + 1.0) is None
    # The colour breaks span the values.
    assert answer.breaks[0] == pytest.approx(frame["similarity"].min())
    assert answer.breaks[-1] == pytest.approx(frame["similarity"].max())
    assert answer.breaks == sorted(set(answer.breaks))


def test_worker_answers_with_a_raster(embedded: Path, tmp_path: Path) -> None:
    worker = Worker()
    raster = str(tmp_path / "w.tif")
    reply = worker.handle({"id": 1, "op": "query", "path": str(embedded), "text": ["sand"], "raster": raster, "top_k": 5})
    assert reply["ok"], reply
    got = reply["result"]
    ids = np.frombuffer(base64.b64decode(got["tile_id"]), "<i8")
    sims = np.frombuffer(base64.b64decode(got["similarity"]), "<f4")
    xs = np.frombuffer(base64.b64decode(got["centre_x"]), "<f8")
    ys = np.frombuffer(base64.b64decode(got["centre_y"]), "<f8")
    assert got["raster"] == raster and len(ids) == len(sims) == len(xs) == 5
    assert np.allclose(_sample(Path(raster), np.stack([xs, ys], 1)), sims, atol=1e-6)
    full = worker.handle({"id": 2, "op": "query", "path": str(embedded), "text": ["sand"]})["result"]
    assert got["count"] == full["count"]  # every tile was scored; only five came back
    at = worker.handle({"id": 3, "op": "tile_at", "path": str(embedded), "x": float(xs[0]), "y": float(ys[0])})
    assert at["ok"] and at["result"]["tile_id"] == int(ids[0])
    bad = worker.handle({"id": 4, "op": "query", "path": str(embedded), "text": ["sand"], "raster": raster, "top_k": 0})
    assert not bad["ok"] and "top_k" in bad["error"] and "\n" not in bad["error"]


def test_worker_answers_land_cover_with_a_class_raster(embedded: Path, tmp_path: Path) -> None:
    """``classify`` with ``raster``: every stored tile's top class in a paletted COG, as the tile answer says."""
    worker = Worker()
    classes = ["water", "forest", "urban area"]
    raster = tmp_path / "lc.tif"
    reply = worker.handle({"id": 1, "op": "classify", "path": str(embedded), "classes": classes, "raster": str(raster)})
    assert reply["ok"], reply
    got = reply["result"]
    tiles = worker.handle({"id": 2, "op": "classify", "path": str(embedded), "classes": classes})["result"]
    ids = np.frombuffer(base64.b64decode(tiles["tile_id"]), "<i8")
    top = np.frombuffer(base64.b64decode(tiles["top"]), "<i4")
    assert got["classes"] == classes and got["count"] == len(ids)
    assert got["counts"] == np.bincount(top, minlength=3).tolist()
    grid = rsgeo.open_result(embedded).grid
    inner = [i for i, t in enumerate(ids.tolist()) if divmod(t, grid.n_cols)[0] < grid.n_rows - 2
             and divmod(t, grid.n_cols)[1] < grid.n_cols - 2]
    centres = np.array([np.mean(grid.chip(int(ids[i])).corners, axis=0) for i in inner])
    assert len(inner) > 50 and np.array_equal(_sample(raster, centres), top[inner])
    with rasterio.open(raster) as ds:
        assert ds.nodata == 255 and ds.dtypes == ("uint8",)
        cmap = ds.colormap(1)
    for i, rgb in enumerate(got["colours"]):
        assert cmap[i][:3] == tuple(int(v) for v in rgb.split(","))
    qml = raster.with_suffix(".qml").read_text()
    assert 'type="paletted"' in qml and all(f'label="{c}"' in qml for c in classes)


def test_top_rows_and_breaks() -> None:
    sims = np.array([0.1, 0.5, 0.5, -0.2, 0.9], np.float32)
    assert top_rows(sims, 3).tolist() == [4, 1, 2]  # ties: lower row first
    assert top_rows(sims, 10).tolist() == [4, 1, 2, 0, 3]
    flat = ramp_breaks(np.full(10, 0.3, np.float32))
    assert len(flat) == 2 and flat[0] < 0.3 < flat[1]
    many = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    breaks = ramp_breaks(many)
    assert breaks[0] == many.min() and breaks[-1] == many.max() and len(breaks) == 8


def test_synthetic_result_opens_with_its_512d_test_encoder(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("synthetic_result", ROOT / "benchmarks" / "synthetic_result.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synthetic_result"] = module
    spec.loader.exec_module(module)
    path = tmp_path / "synthetic.gpkg"
    module.build_result(path, 300, dim=512, chip=32)
    result = rsgeo.open_result(path)
    assert result.model_id == "test:hash-512-32-0" and result.encoder.embedding_dim == 512
    norms = np.linalg.norm(result.index.embeddings, axis=1)
    assert len(result.index) == 300 and np.allclose(norms, 1.0, atol=1e-5)
    frame = result.query("solar farm", top_k=3)
    assert frame.geometry.iloc[0].equals(rsgeo.answers.polygons(result.grid, frame["tile_id"].to_numpy()[:1])[0])
    answer = result.query_map("solar farm", tmp_path / "s.tif", top_k=3)
    assert answer.tile_ids.tolist() == frame["tile_id"].tolist()
    with rasterio.open(answer.path) as ds:
        assert ds.shape == (18, 18) and int(np.isnan(ds.read(1)).sum()) == 18 * 18 - 300
