"""Zones (issue 19): one answer per real land-use polygon, from stored chip embeddings.

The eo-learn Sentinel-2 scene is embedded with 32-pixel chips by the test encoder; its own
land-use polygons (EPSG:32633), reprojected to EPSG:4326, are the zones.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

import rsgeo
from rsgeo.answers import polygons
from rsgeo.zones import STATUS_NO_DATA, STATUS_OK, STATUS_TOO_SMALL, UNSURE, classify_zones, query_zones, parse_zones, zone_embeddings
from tests.conftest import run_cli, shared

LULC = "eolearn/TestEOPatch__vector_timeless__LULC.gpkg"
CLASSES = ["forest", "cultivated land", "water"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zones") / "s2.gpkg"
    run_cli("embed", str(shared("eolearn/s2_l1c_scene2_13band.tif")), "-o", str(out), "--model", "test:hash",
            "--chip-size", "32", "--bands", "4,3,2", "-q")
    return out


@pytest.fixture(scope="module")
def zones_4326(tmp_path_factory: pytest.TempPathFactory) -> Path:
    zones = gpd.read_file(shared(LULC)).to_crs("EPSG:4326")
    tiny = zones.iloc[[0]].copy()
    c = zones.to_crs("EPSG:32633").geometry.iloc[0].representative_point()
    tiny["geometry"] = gpd.GeoSeries([c.buffer(2.0)], crs="EPSG:32633").to_crs("EPSG:4326").values  # ~12 m^2 < 1 px
    out = tmp_path_factory.mktemp("z") / "zones.gpkg"
    gpd.GeoDataFrame(gpd.pd.concat([zones, tiny], ignore_index=True), crs="EPSG:4326").to_file(out, layer="lulc")
    return out


def test_parse_zones() -> None:
    assert parse_zones("a/zones.gpkg:lulc") == ("a/zones.gpkg", "lulc")
    assert parse_zones("zones.gpkg") == ("zones.gpkg", None)
    assert parse_zones("C:\\z\\zones.gpkg") == ("C:\\z\\zones.gpkg", None)


def test_zone_answers_keep_geometry_and_attributes(embedded: Path, zones_4326: Path) -> None:
    result = rsgeo.open_result(embedded)
    source = gpd.read_file(zones_4326, layer="lulc")
    answer = classify_zones(result, f"{zones_4326}:lulc", CLASSES)
    assert len(answer) == len(source)
    assert answer.crs == result.grid.crs  # written in the scene CRS
    for col in source.columns.drop("geometry"):
        assert answer[col].tolist() == source[col].tolist()
    assert answer["status"].iloc[-1] == STATUS_TOO_SMALL and np.isnan(answer["top_score"].iloc[-1])
    ok = answer["status"] == STATUS_OK
    assert ok.sum() >= 1
    chips = polygons(result.grid, result.index.tile_ids)
    spans = [int((shapely.area(shapely.intersection(chips, g)) > 0).sum()) for g in answer.geometry[ok]]
    assert max(spans) > 1  # at least one zone spans several chips
    assert set(answer["top_class"][ok]) <= set(CLASSES)
    unsure = classify_zones(result, f"{zones_4326}:lulc", CLASSES, unsure_below=1.01)
    assert (unsure["top_class"][ok] == UNSURE).all()


def test_combined_embedding_is_the_area_weighted_mean(embedded: Path, zones_4326: Path) -> None:
    result = rsgeo.open_result(embedded)
    zones = gpd.read_file(zones_4326, layer="lulc").to_crs(result.grid.crs)
    ids, emb = result.index.tile_ids, result.index.embeddings.astype(np.float64)
    got, status, _ = zone_embeddings(zones, result.grid, ids, emb.astype(np.float32))
    for k, geom in enumerate(zones.geometry):
        if status[k] != STATUS_OK:
            continue
        expect = np.zeros(emb.shape[1])
        for tile, e in zip(ids, emb):
            chip = polygons(result.grid, np.array([tile]))[0]
            expect += chip.intersection(geom).area * e / np.sqrt((e * e).sum())
        expect /= np.sqrt((expect * expect).sum())
        assert np.allclose(got[k], expect, atol=1e-5)


def test_stored_result_is_reused_without_the_scene(embedded: Path, zones_4326: Path, tmp_path: Path) -> None:
    copy = tmp_path / "alone.gpkg"
    copy.write_bytes(embedded.read_bytes())
    answer = classify_zones(rsgeo.open_result(copy), f"{zones_4326}:lulc", ["river", "field"])
    assert (answer["status"] == STATUS_OK).sum() >= 1


def test_cli_classify_zones(embedded: Path, zones_4326: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.gpkg"
    proc = run_cli("classify", str(embedded), "--zones", f"{zones_4326}:lulc", "--classes", ",".join(CLASSES),
                   "--unsure-below", "0.2", "-o", str(out), "-q")
    answer = gpd.read_file(out, layer="zones")
    skipped = int((answer["status"] != STATUS_OK).sum())
    assert proc.stderr.startswith(f"{skipped} of {len(answer)} zones not scored")
    assert answer["status"].iloc[-1] == STATUS_TOO_SMALL
    assert {"LULC_ID", "LULC_NAME", "status", "top_class", "top_score"} <= set(answer.columns)
    scored = answer[answer["status"] == STATUS_OK]
    assert set(scored["top_class"]) <= set(CLASSES) | {UNSURE}


def test_cli_zones_on_a_scene_is_one_clear_line(zones_4326: Path, tmp_path: Path) -> None:
    proc = run_cli("classify", str(shared("eolearn/s2_l1c_scene2_13band.tif")), "--zones", str(zones_4326),
                   "--classes", "a,b", "-o", str(tmp_path / "x.gpkg"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "rsgeo embed" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_zones_mostly_outside_the_scene_are_no_data(embedded: Path) -> None:
    result = rsgeo.open_result(embedded)
    left, bottom, right, top = shapely.box(*polygons(result.grid, result.index.tile_ids).tolist()[0].bounds).bounds
    inside = shapely.box(left, bottom, left + 200, bottom + 200)  # 20 x 20 px inside the first chip
    half_out = shapely.box(left - 900, bottom, left + 100, bottom + 200)  # 90 % outside the scene
    zones = gpd.GeoDataFrame({"name": ["in", "out"]}, geometry=[inside, half_out], crs=result.grid.crs)
    answer = classify_zones(result, zones, CLASSES)
    assert answer["status"].tolist() == [STATUS_OK, STATUS_NO_DATA]
    assert answer["valid_fraction"].iloc[1] == pytest.approx(0.1, abs=0.02)


def test_cli_query_zones_matches_the_library(embedded: Path, zones_4326: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.gpkg"
    run_cli("query", str(embedded), "--zones", f"{zones_4326}:lulc", "--text", "a forest", "-o", str(out), "-q")
    got = gpd.read_file(out, layer="zones")
    expect = query_zones(rsgeo.open_result(embedded), f"{zones_4326}:lulc", ["a forest"])
    assert got["RABA_ID"].tolist() == expect["RABA_ID"].tolist()
    sims = got["similarity"].dropna().to_numpy()
    assert len(sims) == (got["status"] == STATUS_OK).sum() and (np.diff(sims) <= 1e-7).all()  # best first
    assert np.allclose(sims, expect["similarity"].dropna().to_numpy(), atol=1e-6)
