"""Zones (issue 19): one answer per real land-use polygon.

The eo-learn Sentinel-2 scene is embedded with 32-pixel chips by the test encoder; its own
land-use polygons (EPSG:32633), reprojected to EPSG:4326, are the zones. They are answered
from a tiles result's stored chip embeddings, and (``embed --zones``) from each zone's own
chips with the pixels outside it masked, stored as a zones result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from rasterio.windows import bounds as window_bounds

import rsgeo
from rsgeo.answers import polygons
from rsgeo.encoders.testing import HashEncoder
from rsgeo.errors import ResultError
from rsgeo.options import RunOptions
from rsgeo.preprocess import fit_chip
from rsgeo.scene import ReadOptions, Scene
from rsgeo.zone_results import open_zones
from rsgeo.zones import (
    STATUS_NO_DATA, STATUS_OK, STATUS_TOO_SMALL, UNSURE, classify_zones, embed_zones, parse_zones, query_zones,
    zone_embeddings,
)
from tests.conftest import run_cli, shared

LULC = "eolearn/TestEOPatch__vector_timeless__LULC.gpkg"
SCENE = "eolearn/s2_l1c_scene2_13band.tif"
CLASSES = ["forest", "cultivated land", "water"]
READ = ["--chip-size", "32", "--bands", "4,3,2"]
#: A fixed stretch, so that a copy of the scene with other pixels reads the same pixels the same way.
STRETCH = "range:0,0.2"


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
    qml = _stored_style(out, "zones")  # QGIS opens it coloured by class, every class in the legend
    assert 'attr="top_class"' in qml and all(f'value="{c}"' in qml for c in CLASSES)
    assert ('value="unsure"' in qml) == bool((answer["top_class"] == UNSURE).any())


def _stored_style(path: Path, layer: str) -> str:
    import sqlite3

    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT styleQML FROM layer_styles WHERE f_table_name = ?", (layer,)).fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


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
    qml = _stored_style(out, "zones")
    assert 'type="graduatedSymbol"' in qml and 'attr="similarity"' in qml


# -- zones encoded from their own masked chips (embed --zones) ----------------------------


@pytest.fixture(scope="module")
def zones_result(tmp_path_factory: pytest.TempPathFactory, zones_4326: Path) -> Path:
    out = tmp_path_factory.mktemp("zr") / "zones.gpkg"
    run_cli("embed", str(shared(SCENE)), "--zones", f"{zones_4326}:lulc", "-o", str(out), "--model", "test:hash",
            *READ, "-q")
    return out


def _embed(scene: Path, zones: Any, **read: Any) -> Any:
    return embed_zones(scene, zones, read=ReadOptions(chip_size=32, bands=(4, 3, 2), **read),
                       options=RunOptions(encoder=HashEncoder()))


def test_embed_zones_stores_the_zones_in_the_scene_crs(zones_result: Path, zones_4326: Path) -> None:
    source = gpd.read_file(zones_4326, layer="lulc")
    stored = open_zones(zones_result)
    with rasterio.open(shared(SCENE)) as d:
        assert stored.frame.crs == d.crs != source.crs
    for col in source.columns.drop("geometry"):
        assert stored.frame[col].tolist() == source[col].tolist()
    back = gpd.GeoSeries(stored.frame.geometry.values, crs=stored.frame.crs).to_crs(source.crs)
    assert back.geom_equals_exact(source.geometry, tolerance=1e-9).all()
    assert stored.status[-1] == STATUS_TOO_SMALL and np.isnan(stored.embeddings[-1]).all()
    ok = np.asarray(stored.status) == STATUS_OK
    assert ok.sum() >= 10 and np.allclose(np.linalg.norm(stored.embeddings[ok], axis=1), 1, atol=1e-5)
    assert (stored.frame["n_chips"][ok] >= 1).all()
    assert stored.metadata["result_kind"] == "zones" and stored.metadata["zones"]["mask_rgb"] == [128, 128, 128]
    with pytest.raises(ResultError, match="zones result"):
        rsgeo.open_result(zones_result)


def test_a_zone_over_several_chips_is_the_area_weighted_mean_of_its_masked_chips(zones_4326: Path) -> None:
    scene = shared(SCENE)
    result = _embed(scene, f"{zones_4326}:lulc")
    chips, emb = result.chips, result.chip_embeddings
    big = [k for k, n in enumerate(result.frame["n_chips"]) if n > 1 and result.status[k] == STATUS_OK]
    assert big, "no zone spans several chips"
    encoder = HashEncoder()
    with Scene(scene, ReadOptions(chip_size=32, bands=(4, 3, 2))) as opened:
        for k in big:
            geom = result.frame.geometry.iloc[k]
            rows = [i for i, c in enumerate(chips) if c.zone == k]
            expect = np.zeros(emb.shape[1])
            for i in rows:
                window = chips[i].window
                box = shapely.box(*window_bounds(window, opened.dataset.transform))
                area = box.intersection(geom).area
                assert area > 0 and chips[i].area == pytest.approx(area)
                # the chip the model saw, masked here independently: zone pixel centres kept, the rest grey
                rgb, _ = opened.read_chip(window)
                inside = geometry_mask([geom], out_shape=rgb.shape[:2], transform=chips[i].transform, invert=True)
                masked = np.where(inside[:, :, None], rgb, 128).astype(np.uint8)
                own = encoder.encode_images(fit_chip(masked, encoder.image_spec)[None])[0]
                assert np.allclose(emb[i], own, atol=1e-6)
                expect += area * own / np.linalg.norm(own)
            assert np.allclose(result.embeddings[k], expect / np.linalg.norm(expect), atol=1e-5)
            # the chips cover the zone's part inside the scene
            union = shapely.union_all([shapely.box(*window_bounds(chips[i].window, opened.dataset.transform)) for i in rows])
            footprint = shapely.box(*opened.dataset.bounds)
            assert geom.intersection(footprint).difference(union).area < 1e-6 * geom.area


def _changed_copy(tmp_path: Path, name: str, change: Any) -> Path:
    with rasterio.open(shared(SCENE)) as src:
        data, profile = src.read(), src.profile
    data = change(data)
    out = tmp_path / name
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def test_masking_is_real(tmp_path: Path, zones_4326: Path) -> None:
    """Pixels outside a zone do not change its embedding; pixels inside do."""
    original = _embed(shared(SCENE), f"{zones_4326}:lulc", stretch=STRETCH)
    k = next(k for k, s in enumerate(original.status) if s == STATUS_OK and original.frame["n_chips"][k] == 1)
    geom = original.frame.geometry.iloc[k]
    with rasterio.open(shared(SCENE)) as d:
        inside = geometry_mask([geom], out_shape=(d.height, d.width), transform=d.transform, invert=True)
    rng = np.random.default_rng(0)

    def outside(data: np.ndarray) -> np.ndarray:
        noise = rng.uniform(0, 0.2, data.shape).astype(data.dtype)
        return np.where(inside[None], data, noise)

    def within(data: np.ndarray) -> np.ndarray:
        return np.where(inside[None], data * 0.5, data).astype(data.dtype)

    others = [j for j, s in enumerate(original.status) if s == STATUS_OK and j != k]
    moved = _embed(_changed_copy(tmp_path, "outside.tif", outside), f"{zones_4326}:lulc", stretch=STRETCH)
    assert np.array_equal(moved.embeddings[k], original.embeddings[k])
    assert not np.allclose(moved.embeddings[others], original.embeddings[others])  # the noise was really there
    darker = _embed(_changed_copy(tmp_path, "inside.tif", within), f"{zones_4326}:lulc", stretch=STRETCH)
    assert not np.allclose(darker.embeddings[k], original.embeddings[k], atol=1e-4)


def test_embed_then_classify_equals_classify_on_the_scene(zones_result: Path, zones_4326: Path, tmp_path: Path) -> None:
    stored, direct = tmp_path / "stored.gpkg", tmp_path / "direct.gpkg"
    proc = run_cli("classify", str(zones_result), "--classes", ",".join(CLASSES), "-o", str(stored), "-q")
    run_cli("classify", str(shared(SCENE)), "--zones", f"{zones_4326}:lulc", "--classes", ",".join(CLASSES),
            "--model", "test:hash", *READ, "-o", str(direct), "-q")
    a, b = gpd.read_file(stored, layer="zones"), gpd.read_file(direct, layer="zones")
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert proc.stderr.startswith(f"{int((a['status'] != STATUS_OK).sum())} of {len(a)} zones not scored")
    ok = a["status"] == STATUS_OK
    assert set(a["top_class"][ok]) <= set(CLASSES) and a["top_class"][~ok].isna().all()
    expect = classify_zones(open_zones(zones_result), None, CLASSES)
    assert np.allclose(a["top_score"].to_numpy(float), expect["top_score"].to_numpy(float), equal_nan=True, atol=1e-6)


def test_query_a_zones_result_matches_the_library(zones_result: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.gpkg"
    run_cli("query", str(zones_result), "--text", "a forest", "-o", str(out), "-q")
    got = gpd.read_file(out, layer="zones")
    expect = query_zones(open_zones(zones_result), None, ["a forest"])
    assert got["zone_id"].tolist() == expect["zone_id"].tolist()
    sims = got["similarity"].dropna().to_numpy()
    assert len(sims) == (got["status"] == STATUS_OK).sum() and (np.diff(sims) <= 1e-7).all()
    assert np.allclose(sims, expect["similarity"].dropna().to_numpy(), atol=1e-6)


def test_a_zones_result_takes_no_more_zones(zones_result: Path, zones_4326: Path, tmp_path: Path) -> None:
    proc = run_cli("classify", str(zones_result), "--zones", str(zones_4326), "--classes", "a,b",
                   "-o", str(tmp_path / "x.gpkg"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "already holds zone embeddings" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.gpkg").exists()


def test_a_damaged_zones_result_is_one_line(zones_result: Path, tmp_path: Path) -> None:
    import sqlite3

    copy = tmp_path / "cut.gpkg"
    copy.write_bytes(zones_result.read_bytes())
    with sqlite3.connect(copy) as db:
        db.execute("DELETE FROM rsgeo_zone_embeddings WHERE zone_id = (SELECT min(zone_id) FROM rsgeo_zone_embeddings)")
    proc = run_cli("classify", str(copy), "--classes", "a,b", "-o", str(tmp_path / "x.gpkg"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "is damaged" in proc.stderr and "truncated" in proc.stderr
    assert not (tmp_path / "x.gpkg").exists()


def test_embed_zones_never_replaces_an_output_without_overwrite(zones_4326: Path, tmp_path: Path) -> None:
    out = tmp_path / "zones.gpkg"
    out.write_bytes(b"an earlier file")
    proc = run_cli("embed", str(shared(SCENE)), "--zones", f"{zones_4326}:lulc", "-o", str(out), "--model", "test:hash",
                   *READ, check=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"an earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zones.gpkg"]


def test_query_on_the_scene_equals_query_on_the_zones_result(zones_result: Path, zones_4326: Path, tmp_path: Path) -> None:
    stored, direct = tmp_path / "stored.gpkg", tmp_path / "direct.gpkg"
    run_cli("query", str(zones_result), "--text", "a river", "-o", str(stored), "-q")
    run_cli("query", str(shared(SCENE)), "--zones", f"{zones_4326}:lulc", "--text", "a river", "--model", "test:hash",
            *READ, "-o", str(direct), "-q")
    a, b = gpd.read_file(stored, layer="zones"), gpd.read_file(direct, layer="zones")
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))


def test_a_cancelled_embed_writes_nothing(zones_4326: Path, tmp_path: Path) -> None:
    from rsgeo.errors import Cancelled

    out = tmp_path / "zones.gpkg"
    with pytest.raises(Cancelled):
        embed_zones(shared(SCENE), f"{zones_4326}:lulc", output=out, read=ReadOptions(chip_size=32, bands=(4, 3, 2)),
                    options=RunOptions(encoder=HashEncoder(), batch_size=4), cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file, no lock left


# -- class sets (issue 19): zones prompted, named and coloured as rsgeo classify does -------------

#: A class set file: synonyms join the prompts, colours the legend (not the conventional green and blue).
CLASS_SET_YAML = """name: my-classes
classes:
  - name: forest
    synonyms: [woodland, trees]
    colour: "1,2,3"
  - name: water
    synonyms: [lake, river]
    colour: "4,5,6"
  - name: cultivated land
    colour: "7,8,9"
"""


def _legend(qml: str) -> dict[str, str]:
    """Category value -> ``"r,g,b"`` of a categorized QML style."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(qml.split(">", 1)[1])  # past the DOCTYPE
    colour = {s.get("name"): next(o.get("value") for o in s.iter("Option") if o.get("name") == "color")
              for s in root.iter("symbol")}
    return {str(c.get("value")): str(colour[c.get("symbol")]).rsplit(",", 1)[0] for c in root.iter("category")}


def test_a_class_set_answers_a_zone_as_classify_answers_its_chip(embedded: Path, tmp_path: Path) -> None:
    """Zones that are exactly chips of a tiles result score as those chips do in rsgeo classify --class-set."""
    from rsgeo.answers import score_columns
    from rsgeo.classsets import load_class_set

    result = rsgeo.open_result(embedded)
    tiles = result.index.tile_ids[[0, 3, len(result.index.tile_ids) - 1]]
    zones = gpd.GeoDataFrame({"tile": tiles}, geometry=list(polygons(result.grid, tiles)), crs=result.grid.crs)
    zones.to_file(tmp_path / "chips.gpkg", layer="chips")
    answer, landcover = tmp_path / "answer.gpkg", tmp_path / "landcover.gpkg"
    run_cli("classify", str(embedded), "--zones", f"{tmp_path / 'chips.gpkg'}:chips", "--class-set", "esa-worldcover",
            "-o", str(answer), "-q")
    run_cli("classify", str(embedded), "--class-set", "esa-worldcover", "-o", str(landcover), "-q")
    cs = load_class_set("esa-worldcover")
    columns = score_columns(cs.names)
    got = gpd.read_file(answer, layer="zones")
    expect = gpd.read_file(landcover, layer="landcover").set_index("tile_id").loc[got["tile"]]
    assert (got["status"] == STATUS_OK).all() and set(columns) <= set(got.columns)
    assert np.allclose(got[columns].to_numpy(float), expect[columns].to_numpy(float), atol=1e-5)
    assert got["top_class"].tolist() == [cs.names[i] for i in got[columns].to_numpy().argmax(axis=1)]
    legend = _legend(_stored_style(answer, "zones"))
    assert legend == {name: cs.colours[name] for name in cs.names}  # every class, in the class set's colours


def test_a_class_set_file_with_a_zones_result_and_with_the_scene(zones_result: Path, zones_4326: Path,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text(CLASS_SET_YAML, encoding="utf-8")
    stored, direct, names_only = tmp_path / "stored.gpkg", tmp_path / "direct.gpkg", tmp_path / "names.gpkg"
    run_cli("classify", str(zones_result), "--class-set", str(path), "-o", str(stored), "-q")
    run_cli("classify", str(shared(SCENE)), "--zones", f"{zones_4326}:lulc", "--class-set", str(path),
            "--model", "test:hash", *READ, "-o", str(direct), "-q")
    run_cli("classify", str(zones_result), "--classes", "forest,water,cultivated land", "-o", str(names_only), "-q")
    a, b, c = (gpd.read_file(p, layer="zones") for p in (stored, direct, names_only))
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))  # encoded now or before: the same answer
    ok = a["status"] == STATUS_OK
    scores = ["forest", "water", "cultivated_land"]
    assert not np.allclose(a[scores][ok].to_numpy(float), c[scores][ok].to_numpy(float), atol=1e-4)  # synonyms prompted
    expect = classify_zones(open_zones(zones_result), None, class_set=str(path))
    assert expect.attrs["class_set"] == str(path)
    assert np.allclose(a[scores].to_numpy(float), expect[scores].to_numpy(float), equal_nan=True, atol=1e-6)
    legend = _legend(_stored_style(stored, "zones"))
    assert {k: legend[k] for k in ("forest", "water", "cultivated land")} == \
        {"forest": "1,2,3", "water": "4,5,6", "cultivated land": "7,8,9"}
    templated = classify_zones(open_zones(zones_result), None, class_set=str(path), templates=["an image of {}"])
    assert not np.allclose(templated[scores][ok].to_numpy(float), a[scores][ok].to_numpy(float), atol=1e-4)


@pytest.mark.parametrize("case", ["unknown-class-set", "classes-and-class-set", "neither"])
def test_class_mistakes_with_zones_are_one_line_before_any_encoding(zones_4326: Path, tmp_path: Path, case: str) -> None:
    out = tmp_path / "x.gpkg"
    given = {"unknown-class-set": ["--class-set", "no-such-set"],
             "classes-and-class-set": ["--classes", "a,b", "--class-set", "eurosat"], "neither": []}[case]
    proc = run_cli("classify", str(shared(SCENE)), "--zones", f"{zones_4326}:lulc", *given, "--model", "test:hash",
                   *READ, "-o", str(out), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert ("no-such-set" if case == "unknown-class-set" else "--class-set") in lines[0]
    assert not out.exists()


def test_the_zones_not_scored_are_said_once_without_q(embedded: Path, zones_4326: Path, tmp_path: Path) -> None:
    """The library's warning and the CLI's line were both printed for a scene's zones."""
    for source in ("scene", "result"):
        args = [str(shared(SCENE)), "--model", "test:hash", *READ] if source == "scene" else [str(embedded)]
        proc = run_cli("classify", *args, "--zones", f"{zones_4326}:lulc", "--classes", ",".join(CLASSES),
                       "-o", str(tmp_path / f"{source}.gpkg"))
        assert proc.stderr.count("zones not scored") == 1, proc.stderr
