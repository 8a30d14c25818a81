"""classify and query end to end on the real scenes of ../shared/data (issue 2, points 2 and 3)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from tests.conftest import run_cli, shared

SCENES = {
    "landsat7": ("L7_ETMs.tif", ["--bands", "3,2,1"]),
    "rgb_byte_collar": ("RGB.byte.tif", ["--chip-size", "96"]),
    "osbs_aerial": ("OSBS_029.tif", ["--chip-size", "128", "--stride", "96"]),
    "sentinel2_float": ("eolearn/s2_l1c_scene2_13band.tif", ["--bands", "4,3,2", "--chip-size", "32"]),
}
CLASSES = "forest,water,urban area,cropland,cloud"


def expected_window(row: int, col: int, width: int, height: int, size: int, stride: int) -> Window:
    """The documented grid rule, written out independently of rsgeo.grid."""
    w, h = min(size, width), min(size, height)
    return Window(min(col * stride, width - w), min(row * stride, height - h), w, h)


def styles(path: Path) -> dict[str, tuple[str, str, str, str, int]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT f_table_name, f_table_catalog, f_table_schema, f_geometry_column, styleQML, useAsDefault FROM layer_styles"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def metadata(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as db:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM rsgeo_metadata")}


@pytest.fixture(scope="module", params=sorted(SCENES))
def scene_result(request: pytest.FixtureRequest, tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    name = request.param
    rel, extra = SCENES[name]
    scene = shared(rel)
    out = tmp_path_factory.mktemp(name) / "result.gpkg"
    model = f"local-dir:{tiny_clip_dir}"
    run_cli("classify", str(scene), "-o", str(out), "--classes", CLASSES, "--model", model, "-q", *extra)
    # Queried from the scene too (not from the stored embeddings), written into a second file.
    queried = out.with_name("queried.gpkg")
    run_cli("query", str(scene), "-o", str(queried), "--text", "solar farm", "--text", "flooded fields",
            "--model", model, "-q", *extra)
    # Merge the query layers into the classify result so each test sees one file.
    for layer in ("query_solar_farm", "query_flooded_fields"):
        pyogrio.write_dataframe(pyogrio.read_dataframe(queried, layer=layer), out, layer=layer)
    with sqlite3.connect(out) as db:
        db.execute("ATTACH DATABASE ? AS q", (str(queried),))
        db.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                   "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) SELECT f_table_catalog, "
                   "f_table_schema, f_table_name, f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, "
                   "description, owner, ui FROM q.layer_styles WHERE f_table_name LIKE 'query_%'")
        layers = json.loads(db.execute("SELECT value FROM q.rsgeo_metadata WHERE key='layers'").fetchone()[0])
        mine = json.loads(db.execute("SELECT value FROM rsgeo_metadata WHERE key='layers'").fetchone()[0])
        mine.update({k: v for k, v in layers.items() if k.startswith("query_")})
        db.execute("UPDATE rsgeo_metadata SET value=? WHERE key='layers'", (json.dumps(mine),))
        db.commit()
    return name, scene, out


def test_layers_open_in_gdal(scene_result: tuple[str, Path, Path]) -> None:
    _, _, out = scene_result
    layers = dict(pyogrio.list_layers(out))
    assert {"tiles", "landcover", "query_solar_farm", "query_flooded_fields"} <= set(layers)
    for layer in ("tiles", "landcover", "query_solar_farm"):
        assert layers[layer] == "Polygon"
        info = pyogrio.read_info(out, layer=layer)
        assert info["features"] > 0


def test_polygons_are_chip_windows_through_the_affine(scene_result: tuple[str, Path, Path]) -> None:
    _, scene, out = scene_result
    meta = metadata(out)
    grid = meta["grid"]
    size, stride = grid["size_px"], grid["stride_px"]
    df = pyogrio.read_dataframe(out, layer="landcover")
    with rasterio.open(scene) as src:
        assert df.crs == src.crs
        for row in df.itertuples():
            win = expected_window(row.row, row.col, src.width, src.height, size, stride)
            assert row.tile_id == row.row * grid["n_cols"] + row.col
            t = window_transform(win, src.transform)
            w, h = win.width, win.height
            expected = np.array([(t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f) for x, y in ((0, 0), (w, 0), (w, h), (0, h), (0, 0))])
            got = np.asarray(row.geometry.exterior.coords)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * max(1.0, abs(src.transform.a)))


def test_scores_are_probabilities(scene_result: tuple[str, Path, Path]) -> None:
    _, _, out = scene_result
    df = pyogrio.read_dataframe(out, layer="landcover")
    cols = ["forest", "water", "urban_area", "cropland", "cloud"]
    scores = df[cols].to_numpy()
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    names = np.array(["forest", "water", "urban area", "cropland", "cloud"])
    assert (df["top_class"].to_numpy() == names[scores.argmax(axis=1)]).all()
    np.testing.assert_allclose(df["top_score"], scores.max(axis=1), atol=1e-7)


def test_query_layers_rank_by_similarity(scene_result: tuple[str, Path, Path]) -> None:
    _, _, out = scene_result
    q = pyogrio.read_dataframe(out, layer="query_solar_farm").sort_values("rank")
    tiles = pyogrio.read_info(out, layer="tiles")["features"]
    assert len(q) == tiles
    assert list(q["rank"]) == list(range(1, len(q) + 1))
    assert np.all(np.diff(q["similarity"].to_numpy()) <= 0)
    assert np.all(np.abs(q["similarity"]) <= 1.0 + 1e-6)


def test_styles_and_metadata_are_stored(scene_result: tuple[str, Path, Path]) -> None:
    name, scene, out = scene_result
    st = styles(out)
    for layer, renderer in [("landcover", "categorizedSymbol"), ("query_solar_farm", "graduatedSymbol"), ("tiles", "singleSymbol")]:
        catalog, schema, geom_col, qml, default = st[layer]
        assert (catalog, schema, default) == ("", "", 1)
        assert geom_col == "geom"
        assert f'type="{renderer}"' in qml
    meta = metadata(out)
    assert meta["schema_version"] == 1
    assert meta["model"]["model_id"].startswith("local-dir:")
    assert len(meta["model"]["weights_sha256"]) == 64
    assert meta["scene"]["path"] == str(scene.resolve())
    assert len(meta["scene"]["sha256"]) == 64
    lc = meta["layers"]["landcover"]
    assert lc["classes"] == ["forest", "water", "urban area", "cropland", "cloud"]
    assert lc["prompts"][0][0] == "a satellite photo of forest."
    assert meta["read"]["stretch"]["kind"] == ("percentile" if name == "sentinel2_float" else "none")
    assert meta["layers"]["query_solar_farm"]["texts"] == ["solar farm"]
