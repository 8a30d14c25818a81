"""Accuracy assessment (rsgeo sample / rsgeo assess) on the real eo-learn land-use reference.

The map is a real Sentinel-2 scene (eolearn scene 2, 100 x 101 px at 10 m) classified through the
deterministic ``test:hash`` encoder in 10-pixel chips: its classes are arbitrary, which is what an
assessment must be able to tell. Every error matrix is checked against a count made here by other
means (brute-force nearest tile centre, point-in-polygon with shapely, the raster's own pixels).
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, shared

SCENE = "eolearn/s2_l1c_scene2_13band.tif"
LULC = "eolearn/lulc.tif"
POLYGONS = "eolearn/TestEOPatch__vector_timeless__LULC.gpkg"
CLASS_MAP = ROOT / "tests" / "data" / "eolearn_class_map.yaml"
CLASSES = ["forest", "grassland", "shrubland", "artificial surface", "cultivated land"]
CODES = {1: "cultivated land", 2: "forest", 3: "grassland", 4: "shrubland", 5: "water", 6: "wetlands", 7: "tundra",
         8: "artificial surface", 9: "bare land", 10: "snow and ice"}


def _classify(out: Path, chip: str, classes: list[str]) -> Path:
    from rsgeo.api import classify
    from rsgeo.options import RunOptions
    from rsgeo.scene import ReadOptions

    return classify(shared(SCENE), out, classes=classes, read=ReadOptions(chip_size=chip, bands=(4, 3, 2)),
                    options=RunOptions(model="test:hash"))


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _classify(tmp_path_factory.mktemp("assess") / "s2.gpkg", "10", CLASSES)


@functools.lru_cache(maxsize=4)
def _tiles(result: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(tile ids, polygon centroids, top classes) of the land-cover layer, read with geopandas."""
    import geopandas as gpd

    frame = gpd.read_file(result, layer="landcover").sort_values("tile_id")
    c = frame.geometry.centroid
    return frame["tile_id"].to_numpy(), np.stack([c.x.to_numpy(), c.y.to_numpy()], axis=1), list(frame["top_class"])


def _pixel_centres() -> tuple[np.ndarray, np.ndarray]:
    import rasterio

    with rasterio.open(shared(SCENE)) as ds:
        t, h, w = ds.transform, ds.height, ds.width
    rows, cols = np.mgrid[0:h, 0:w]
    return t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e


def _nearest_tile(result: Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The tile whose centre is nearest each point, by brute force (ties: the lower tile id)."""
    ids, centres, _ = _tiles(result)
    d = (x.ravel()[:, None] - centres[None, :, 0]) ** 2 + (y.ravel()[:, None] - centres[None, :, 1]) ** 2
    return ids[np.argmin(np.round(d, 6), axis=1)].reshape(x.shape)


def _majority_matrix(
    result: Path, reference: np.ndarray, classes: list[str], purity: float = 0.0, renamed: dict[str, str] | None = None,
) -> tuple[np.ndarray, int]:
    """Error matrix of tiles against the majority of the reference names under them (independent count)."""
    ids, _, top = _tiles(result)
    top_of = {t: (renamed or {}).get(c, c) for t, c in zip(ids.tolist(), top)}
    x, y = _pixel_centres()
    owner = _nearest_tile(result, x, y)
    per_tile: dict[int, Counter[str]] = {}
    for t, name in zip(owner.ravel().tolist(), reference.ravel().tolist()):
        if name is not None:
            per_tile.setdefault(t, Counter())[name] += 1
    matrix = np.zeros((len(classes), len(classes)), int)
    impure = 0
    for t, counter in per_tile.items():
        most = max(counter.values())
        ref = min((n for n, v in counter.items() if v == most), key=classes.index)
        if most / sum(counter.values()) < purity:
            impure += 1
            continue
        matrix[classes.index(top_of[t]), classes.index(ref)] += 1
    return matrix, impure


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def _assess(result: Path, reference: Path | str, out: Path, **kw: object) -> dict:
    from rsgeo.assessment import assess

    assess(result, reference, out, **kw)  # type: ignore[arg-type]
    return _report(out)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The rsgeo command line in this process (its parser, its one-line errors, its exit codes)."""
    from rsgeo.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- Olofsson et al. (2014), section 5 -------------------------------------------------------


def test_olofsson_2014_numerical_example() -> None:
    """Their Table 8 (sample counts, map areas in pixels of 30 m) and the published estimates.

    Published (section 5): areas 21,158 ± 6,158 / 11,686 ± 3,756 / 285,770 ± 15,510 /
    581,386 ± 16,282 ha; user's accuracy 0.88 ± 0.07, 0.73 ± 0.10, 0.93 ± 0.04, 0.96 ± 0.02;
    producer's accuracy 0.75 ± 0.21, 0.85, 0.93 ± 0.03, 0.96; overall 0.95 ± 0.02. For forest
    gain's producer's accuracy the paper prints ± 0.23 where its eq. 7 gives ± 0.254 (and for stable
    non-forest ± 0.02 from eq. 7): those two are asserted from the equation (docs/assessment.md).
    """
    from rsgeo.assessment.estimators import Z95, estimate

    counts = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    pixels = np.array([200_000, 150_000, 3_200_000, 6_450_000])
    e = estimate(["deforestation", "forest gain", "stable forest", "stable non-forest"], counts, pixels * 0.09)
    assert np.allclose(e.weights, [0.02, 0.015, 0.32, 0.645])
    assert np.round(e.area).tolist() == [21158, 11686, 285770, 581386]
    assert np.round(Z95 * e.area_se).tolist() == [6158, 3756, 15510, 16282]
    assert np.round(e.users_accuracy, 2).tolist() == [0.88, 0.73, 0.93, 0.96]
    assert np.round(Z95 * e.users_accuracy_se, 2).tolist() == [0.07, 0.10, 0.04, 0.02]
    assert np.round(e.producers_accuracy, 2).tolist() == [0.75, 0.85, 0.93, 0.96]
    assert round(Z95 * e.producers_accuracy_se[0], 2) == 0.21
    assert round(Z95 * e.producers_accuracy_se[2], 2) == 0.03
    # eq. 7 by hand for forest gain (j = 2): N_i. are the map pixels, N.j the estimated pixels of class j
    n_i = counts.sum(axis=1)
    big_nj = (pixels * counts[:, 1] / n_i).sum()
    p, u = e.producers_accuracy[1], counts[1, 1] / n_i[1]
    others = sum(pixels[i] ** 2 * counts[i, 1] / n_i[i] * (1 - counts[i, 1] / n_i[i]) / (n_i[i] - 1) for i in (0, 2, 3))
    var = (pixels[1] ** 2 * (1 - p) ** 2 * u * (1 - u) / (n_i[1] - 1) + p**2 * others) / big_nj**2
    assert math.isclose(e.producers_accuracy_se[1], math.sqrt(var), rel_tol=1e-12)
    assert round(Z95 * math.sqrt(var), 3) == 0.254
    assert round(e.overall_accuracy, 2) == 0.95 and round(Z95 * e.overall_accuracy_se, 2) == 0.02
    # the proportions of eq. 4 add up to 1, and the adjusted areas to the map's
    assert math.isclose(e.proportions.sum(), 1.0) and math.isclose(e.area.sum(), pixels.sum() * 0.09)


def test_allocation_is_proportional_with_a_minimum() -> None:
    from rsgeo.assessment.sampling import allocate

    alloc = allocate(300, np.array([0.02, 0.015, 0.32, 0.645]), minimum=50)
    assert alloc.sum() == 300 and alloc[:2].tolist() == [50, 50]
    assert alloc[2:].tolist() == [66, 134]  # 200 shared 0.32 : 0.645 (66.3 / 133.7: the larger remainder rounds up)
    assert allocate(20, np.array([1.0, 1.0, 98.0])).tolist() == [6, 6, 8]  # minimum n // k = 6
    assert allocate(100, np.array([5.0, 95.0]), capacity=np.array([3, 1000])).tolist() == [3, 97]


# -- wall-to-wall references -----------------------------------------------------------------


def test_raster_reference_confusion_matrix_equals_an_independent_count(result: Path, tmp_path: Path) -> None:
    import rasterio

    report = _assess(result, shared(LULC), tmp_path / "r", class_map=CLASS_MAP)
    with rasterio.open(shared(LULC)) as ds:
        codes = ds.read(1)
    names = np.vectorize(lambda c: CODES.get(int(c)), otypes=[object])(codes)
    classes = report["classes"]
    expected, _ = _majority_matrix(result, names, classes)
    assert np.array_equal(np.array(report["confusion_matrix"]["counts"]), expected)
    assert report["sample_count"] == expected.sum() == 110  # 10 x 11 tiles, every one under the reference
    oa = sum(report["proportions"][i][i] for i in range(len(classes)))
    assert math.isclose(report["overall_accuracy"], oa, abs_tol=1e-6)
    # the strata weights are the map's class areas (pixels of the tiles' cells x pixel area)
    areas = {c["class"]: c["map_area_m2"] for c in report["per_class"]}
    px = abs(ds.transform.a * ds.transform.e)
    owner = _nearest_tile(result, *_pixel_centres())
    ids, _, top = _tiles(result)
    top_of = dict(zip(ids.tolist(), top))
    mapped = Counter(top_of[t] for t in owner.ravel().tolist())
    for name, m2 in areas.items():
        assert math.isclose(m2, mapped.get(name, 0) * px, rel_tol=1e-9)
    assert (tmp_path / "r" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| map \\ reference |" in (tmp_path / "r" / "report.md").read_text()
    worst = report["worst_confused"]
    assert worst and all(w["map_class"] != w["reference_class"] for w in worst)
    assert {w["tile_id"] for w in worst} <= set(top_of)


def test_purity_threshold_leaves_out_mixed_tiles(result: Path, tmp_path: Path) -> None:
    import rasterio

    with rasterio.open(shared(LULC)) as ds:
        names = np.vectorize(lambda c: CODES.get(int(c)), otypes=[object])(ds.read(1))
    report = _assess(result, shared(LULC), tmp_path / "r", class_map=CLASS_MAP, purity=0.9)
    expected, impure = _majority_matrix(result, names, report["classes"], purity=0.9)
    assert impure > 0 and report["excluded"]["cells_below_purity"] == impure
    assert np.array_equal(np.array(report["confusion_matrix"]["counts"]), expected)


def test_polygon_reference_matches_point_in_polygon_count(result: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    report = _assess(result, shared(POLYGONS), tmp_path / "r", reference_field="LULC_NAME",
                     class_map=_write_polygon_map(tmp_path))
    polys = gpd.read_file(shared(POLYGONS))
    x, y = _pixel_centres()
    names = np.full(x.shape, None, object)
    for geom, name in zip(polys.geometry, polys["LULC_NAME"]):  # later polygons win, as documented
        if name:
            names[shapely.contains_xy(geom, x, y)] = name
    expected, _ = _majority_matrix(result, names, report["classes"], renamed=POLYGON_NAMES)
    assert np.array_equal(np.array(report["confusion_matrix"]["counts"]), expected)
    assert report["class_matching"]["shrubland"] == "schrubland"


#: The polygons' LULC_NAME spells shrubland "schrubland".
POLYGON_NAMES = {"shrubland": "schrubland"}


def _write_polygon_map(folder: Path) -> Path:
    (folder / "cm.yaml").write_text(
        "classes: {forest: forest, grassland: grassland, shrubland: schrubland, artificial surface: artificial surface, "
        "cultivated land: cultivated land}\n"
    )
    return folder / "cm.yaml"


def test_reference_in_another_crs_is_reprojected(result: Path, tmp_path: Path) -> None:
    import geopandas as gpd

    polys = gpd.read_file(shared(POLYGONS))
    polys.to_crs("EPSG:4326").to_file(tmp_path / "wgs84.gpkg", driver="GPKG")
    kw = {"reference_field": "LULC_NAME", "class_map": _write_polygon_map(tmp_path)}
    utm = np.array(_assess(result, shared(POLYGONS), tmp_path / "utm", **kw)["confusion_matrix"]["counts"])
    geo = np.array(_assess(result, tmp_path / "wgs84.gpkg", tmp_path / "geo", **kw)["confusion_matrix"]["counts"])
    assert utm.sum() == geo.sum() and np.abs(utm - geo).sum() <= 2  # vertices through WGS84 and back


def test_raster_reference_in_another_crs_is_resampled_onto_the_map_grid(result: Path, tmp_path: Path) -> None:
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(shared(LULC)) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height, *src.bounds)
        profile = {**src.profile, "crs": "EPSG:3857", "transform": transform, "width": width, "height": height, "nodata": 255}
        with rasterio.open(tmp_path / "mercator.tif", "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), dst_nodata=255, resampling=Resampling.nearest)
    utm = _assess(result, shared(LULC), tmp_path / "utm", class_map=CLASS_MAP)
    merc = _assess(result, tmp_path / "mercator.tif", tmp_path / "merc", class_map=CLASS_MAP)
    assert merc["crs"] == utm["crs"] == "EPSG:32633"
    a, b = np.array(utm["confusion_matrix"]["counts"]), np.array(merc["confusion_matrix"]["counts"])
    assert a.shape == b.shape and b.sum() == a.sum() == 110
    assert np.abs(a - b).sum() <= 0.1 * a.sum()  # nearest neighbour twice moves a few mixed tiles' majority


# -- a sample, labelled, assessed -------------------------------------------------------------


def test_stratified_sample_labelled_from_the_reference_then_assessed(result: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    import pyogrio
    import rasterio

    from rsgeo.assessment import sample

    out = tmp_path / "samples.gpkg"
    kw = {"n": 60, "stratified": True, "min_per_class": 5}
    sample(result, out, seed=7, **kw)  # type: ignore[arg-type]
    points = gpd.read_file(out, layer="samples")
    strata = pyogrio.read_dataframe(out, layer="strata")
    assert len(points) == 60 and points["label"].isna().all()
    drawn = points["map_class"].value_counts()
    for row in strata.itertuples():
        assert drawn.get(row.stratum, 0) == row.n_samples
        assert row.n_samples >= 5 or row.map_pixels == 0
    assert math.isclose(strata["stratum_weight"].sum(), 1.0)
    # the same seed draws the same points; another seed others
    sample(result, tmp_path / "again.gpkg", seed=7, **kw)  # type: ignore[arg-type]
    sample(result, tmp_path / "other.gpkg", seed=8, **kw)  # type: ignore[arg-type]
    assert gpd.read_file(tmp_path / "again.gpkg", layer="samples").geometry.equals(points.geometry)
    assert not gpd.read_file(tmp_path / "other.gpkg", layer="samples").geometry.equals(points.geometry)
    # "label in QGIS": here, from the reference raster under each point
    with rasterio.open(shared(LULC)) as ds:
        codes = [int(v[0]) for v in ds.sample(zip(points.geometry.x, points.geometry.y))]
    points["label"] = [CODES.get(c) for c in codes]
    points.to_file(out, layer="samples", driver="GPKG")
    report = _assess(result, out, tmp_path / "r", class_map=CLASS_MAP)
    # independent count: each point's map class is the tile whose centre is nearest
    ids, _, top = _tiles(result)
    top_of = dict(zip(ids.tolist(), top))
    tile = _nearest_tile(result, points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    classes = report["classes"]
    expected = np.zeros((len(classes), len(classes)), int)
    for t, label in zip(tile.tolist(), points["label"]):
        if label is not None:
            expected[classes.index(top_of[t]), classes.index(label)] += 1
    assert np.array_equal(np.array(report["confusion_matrix"]["counts"]), expected)
    assert report["unit"] == "point" and report["excluded"]["points_unlabelled"] == sum(l is None for l in points["label"])


def test_several_results_are_compared_in_one_table(result: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = _classify(tmp_path / "coarse.gpkg", "20", CLASSES)
    code, stdout, err = _cli(capsys, "assess", str(result), "--reference", str(shared(LULC)), "--class-map", str(CLASS_MAP),
                             "--compare", f"{other}:landcover", "-o", str(tmp_path / "r"))
    assert code == 0 and err.strip() == f"rsgeo: wrote {tmp_path / 'r'}"
    rows = stdout.strip().splitlines()
    assert rows[0].split()[:3] == ["map", "units", "OA"] and len(rows) == 3
    assert rows[1].startswith("s2.gpkg:landcover") and rows[2].startswith("coarse.gpkg:landcover")
    report = _report(tmp_path / "r")
    assert [c["map"] for c in report["compared"]] == ["s2.gpkg:landcover", "coarse.gpkg:landcover"]
    assert report["compared"][1]["units"] == 5 * 6  # 20-pixel tiles: 5 columns, 6 rows


# -- bad inputs: one line, exit 2, nothing written ------------------------------------------


def _shifted_lulc(path: Path, dx: float) -> Path:
    import rasterio
    from affine import Affine

    with rasterio.open(shared(LULC)) as src:
        profile, data = src.profile, src.read()
    profile["transform"] = Affine.translation(dx, 0) * profile["transform"]
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _no_crs_lulc(path: Path) -> Path:
    import rasterio

    with rasterio.open(shared(LULC)) as src:
        profile, data = src.profile, src.read()
    profile["crs"] = None
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize("case", ["no_overlap", "unknown_map_class", "unknown_reference_class", "missing_field", "no_crs", "unlabelled"])
def test_bad_inputs_give_one_clear_line(result: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["assess", str(result), "-o", str(tmp_path / "r")]
    if case == "no_overlap":
        args += ["--reference", str(_shifted_lulc(tmp_path / "far.tif", 100_000.0)), "--class-map", str(CLASS_MAP)]
        expected = "far.tif does not overlap the map s2.gpkg:landcover"
    elif case == "unknown_map_class":
        (tmp_path / "cm.yaml").write_text("classes: {forest: forest, orchard: forest}\n")
        args += ["--reference", str(shared(LULC)), "--class-map", str(tmp_path / "cm.yaml")]
        expected = "--class-map cm.yaml names map classes the layer does not have: orchard; the layer's classes are forest, grassland"
    elif case == "unknown_reference_class":
        (tmp_path / "cm.yaml").write_text("classes: {forest: woodland}\nreference_codes: {2: forest}\n")
        args += ["--reference", str(shared(LULC)), "--class-map", str(tmp_path / "cm.yaml")]
        expected = "--class-map cm.yaml names reference classes the reference does not have: woodland"
    elif case == "missing_field":
        args += ["--reference", str(shared(POLYGONS)), "--reference-field", "CLASS"]
        expected = "has no field 'CLASS'; pass the class field with --reference-field (its fields: index, RABA_ID"
    elif case == "no_crs":
        args += ["--reference", str(_no_crs_lulc(tmp_path / "nocrs.tif")), "--class-map", str(CLASS_MAP)]
        expected = "nocrs.tif has no CRS, so it cannot be placed over the map"
    else:
        assert _cli(capsys, "sample", str(result), "-n", "5", "-o", str(tmp_path / "s.gpkg"))[0] == 0
        args += ["--reference", str(tmp_path / "s.gpkg")]
        expected = "has a reference class in 'label' yet"
    code, _, err = _cli(capsys, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsgeo: error: ") and expected in lines[0], lines
    assert not (tmp_path / "r").exists()


def test_unmatched_map_classes_are_reported_and_left_out(result: Path, tmp_path: Path) -> None:
    """Without a class map, "shrubland" matches nothing in the polygons (they spell it "schrubland")."""
    report = _assess(result, shared(POLYGONS), tmp_path / "r", reference_field="LULC_NAME")
    assert report["unmatched_map_classes"] == ["shrubland"]
    assert "schrubland" in report["reference_classes_no_map_class_stands_for"]
    _, _, top = _tiles(result)
    shrub_tiles = top.count("shrubland")
    assert 0 < report["excluded"]["cells_of_unmatched_map_class"] <= shrub_tiles
    assert report["sample_count"] + report["excluded"]["cells_of_unmatched_map_class"] <= len(top)
    assert "Map classes matching no reference class (left out): shrubland." in (tmp_path / "r" / "report.md").read_text()


def test_every_pixel_belongs_to_a_chip_that_covers_it() -> None:
    """The cells partition the scene, and a pixel's cell is a chip whose window holds the pixel."""
    from affine import Affine

    from rsgeo.assessment.mapcells import grid_cells
    from rsgeo.grid import ChipGrid, ChipSpec

    rng = np.random.default_rng(0)
    for _ in range(25):
        w, h = (int(v) for v in rng.integers(1, 90, 2))
        size = int(rng.integers(1, 40))
        stride = int(rng.integers(1, size + 1))
        grid = ChipGrid(w, h, Affine(1, 0, 0, 0, -1, 0), ChipSpec(size, stride))
        cells = grid_cells(grid)
        assert cells.shape == (h, w) and cells.min() >= 0 and cells.max() < len(grid)
        rows, cols = np.mgrid[0:h, 0:w]
        for tile in np.unique(cells):
            win = grid.chip(int(tile)).window
            mine = cells == tile
            assert (cols[mine] >= win.col_off).all() and (cols[mine] < win.col_off + win.width).all()
            assert (rows[mine] >= win.row_off).all() and (rows[mine] < win.row_off + win.height).all()


def test_a_class_only_the_reference_knows_is_all_omission() -> None:
    from rsgeo.assessment.estimators import estimate

    counts = np.array([[8, 2, 1], [1, 9, 3], [0, 0, 0]])  # "c" is never mapped, but the reference finds it
    e = estimate(["a", "b", "c"], counts, np.array([100.0, 200.0, 0.0]))
    assert e.producers_accuracy[2] == 0 and e.producers_accuracy_se[2] == 0 and np.isnan(e.users_accuracy[2])
    assert math.isclose(e.area_proportion[2], 100 / 300 * 1 / 11 + 200 / 300 * 3 / 13)
    assert math.isclose(e.area.sum(), 300.0)


def test_a_class_raster_is_assessed_cell_by_cell_at_the_scene_resolution(result: Path, tmp_path: Path) -> None:
    """``--layer landcover_class``: the COG beside the result is the map; each raster cell is one unit,
    its reference the majority of the scene-resolution reference pixels whose centres fall in it."""
    import rasterio

    from rsgeo.gpkg import read_metadata

    record = read_metadata(result)["rasters"]["landcover_class"]
    report = _assess(result, shared(LULC), tmp_path / "r", class_map=CLASS_MAP, layer="landcover_class")
    with rasterio.open(shared(LULC)) as ds:
        names = np.vectorize(lambda c: CODES.get(int(c)), otypes=[object])(ds.read(1))
    with rasterio.open(result.parent / record["path"]) as cog:
        raster = cog.read(1)
        x, y = _pixel_centres()
        rows, cols = rasterio.transform.rowcol(cog.transform, x.ravel(), y.ravel())
    rows, cols = np.asarray(rows), np.asarray(cols)
    classes = report["classes"]
    per_cell: dict[int, Counter[str]] = {}
    map_of: dict[int, str] = {}
    for r, c, name in zip(rows.tolist(), cols.tolist(), names.ravel().tolist()):
        value = int(raster[r, c])
        if value == record["nodata"] or name is None:
            continue
        cell = r * raster.shape[1] + c
        map_of[cell] = CLASSES[value]
        per_cell.setdefault(cell, Counter())[name] += 1
    expected = np.zeros((len(classes), len(classes)), int)
    for cell, counter in per_cell.items():
        most = max(counter.values())
        ref = min((n for n, v in counter.items() if v == most), key=classes.index)
        expected[classes.index(map_of[cell]), classes.index(ref)] += 1
    assert np.array_equal(np.array(report["confusion_matrix"]["counts"]), expected)
    assert report["sample_count"] == len(per_cell) > 0
    assert report["map"] == "s2.gpkg:landcover_class"
    assert report["worst_confused"] and all("raster_cell" in w for w in report["worst_confused"])
    assert "| raster_cell |" in (tmp_path / "r" / "report.md").read_text()
