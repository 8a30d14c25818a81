"""Encode once, ask forever: answers from stored embeddings (issue 4, point 1)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pytest

import rsgeo
from tests.conftest import run_cli, shared

CLASSES = "forest,water,urban area,cloud"


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> dict[str, Path]:
    """One-shot runs on a copy of a real scene, then the scene copy is deleted."""
    work = tmp_path_factory.mktemp("stored")
    scene = work / "scene.tif"
    shutil.copyfile(shared("RGB.byte.tif"), scene)
    model = f"local-dir:{tiny_clip_dir}"
    common = ["--model", model, "--chip-size", "64", "-q"]
    paths = {k: work / f"{k}.gpkg" for k in ("embedded", "oneshot_classify", "oneshot_query")}
    run_cli("embed", str(scene), "-o", str(paths["embedded"]), *common)
    run_cli("classify", str(scene), "-o", str(paths["oneshot_classify"]), "--classes", CLASSES, *common)
    run_cli("query", str(scene), "-o", str(paths["oneshot_query"]), "--text", "coral reef", "--text", "cumulus cloud", *common)
    scene.unlink()  # from here on only the GeoPackages exist
    return paths


def test_classify_from_the_geopackage_equals_one_shot(encoded: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "reclassified.gpkg"
    proc = run_cli("classify", str(encoded["embedded"]), "-o", str(out), "--classes", CLASSES, "-q")
    assert proc.stderr == ""
    a = pyogrio.read_dataframe(out, layer="landcover").sort_values("tile_id").reset_index(drop=True)
    b = pyogrio.read_dataframe(encoded["oneshot_classify"], layer="landcover").sort_values("tile_id").reset_index(drop=True)
    assert len(a) == len(b) > 50
    cols = ["forest", "water", "urban_area", "cloud"]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-5, rtol=0)
    assert (a["top_class"] == b["top_class"]).all()
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=1e-9).all()


def test_query_in_place_adds_layers_and_equals_one_shot(encoded: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "inplace.gpkg"
    shutil.copyfile(encoded["embedded"], target)
    run_cli("query", str(target), "--text", "coral reef", "--text", "cumulus cloud", "-q")
    layers = {name for name, _ in pyogrio.list_layers(target)}
    assert {"tiles", "query_coral_reef", "query_cumulus_cloud"} <= layers
    for layer in ("query_coral_reef", "query_cumulus_cloud"):
        a = pyogrio.read_dataframe(target, layer=layer).sort_values("tile_id")
        b = pyogrio.read_dataframe(encoded["oneshot_query"], layer=layer).sort_values("tile_id")
        np.testing.assert_allclose(a["similarity"], b["similarity"], atol=1e-5, rtol=0)
        assert (a["rank"].to_numpy() == b["rank"].to_numpy()).all()
    with sqlite3.connect(target) as db:
        styled = {r[0] for r in db.execute("SELECT f_table_name FROM layer_styles")}
    assert {"query_coral_reef", "query_cumulus_cloud", "tiles"} <= styled


def test_a_different_model_is_refused(encoded: dict[str, Path]) -> None:
    before = encoded["embedded"].read_bytes()
    proc = run_cli("query", str(encoded["embedded"]), "--text", "x", "--model", "arch:ViT-B-32", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "was encoded with model" in lines[0] and "Traceback" not in proc.stderr
    assert encoded["embedded"].read_bytes() == before


def test_example_and_text_queries_top_k(encoded: dict[str, Path], tiny_clip_dir: Path) -> None:
    result = rsgeo.open_result(encoded["embedded"])
    tiles = result.read_layer("tiles")
    anchor = int(tiles["tile_id"].iloc[len(tiles) // 2])
    like = result.query(like_tiles=[anchor], top_k=5)
    assert len(like) == 5 and int(like["tile_id"].iloc[0]) == anchor
    assert like["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    # The same tile picked by a point at its centre, given in geographic coordinates.
    centre = tiles.set_index("tile_id").geometry.loc[anchor].centroid
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(tiles.crs, "EPSG:4326", always_xy=True).transform(centre.x, centre.y)
    by_point = result.query(like=[f"{lon},{lat}@EPSG:4326"], top_k=5)
    assert int(by_point["tile_id"].iloc[0]) == anchor
    both = result.query("coral reef", like_tiles=[anchor], unlike_tiles=[int(like["tile_id"].iloc[-1])], threshold=0.0)
    assert (both["similarity"] >= 0).all()
    assert list(both["rank"]) == list(range(1, len(both) + 1))
    text_only = result.query("coral reef", top_k=50)
    assert len(text_only) == 50 and text_only["similarity"].is_monotonic_decreasing
