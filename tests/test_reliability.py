"""Damaged results, reserved names and input mistakes: one clear line before any work (issue 17).

Like ``tests/test_corpus.py``, on inputs :mod:`tests.corpus` writes, with the
deterministic ``test:hash`` encoder; but the command line runs in this process
(``rsgeo.cli.main``: the same parser, checks, messages and exit codes as the
``rsgeo`` command, without a Python start-up per case, so that the whole file
stays fast). The cases with processes at once are ``tests/test_concurrency.py``. "Before encoding" is checked by the run journal
(``OUT.gpkg.rsgeo-partial``), which a run creates just before its first chip:
a mistake found in pre-flight leaves none. ``docs/errors.md`` lists every case.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyogrio
import pytest
from pyproj import Geod

import rsgeo
from rsgeo.definitions.schema import MAX_CLASSES, journal_path
from rsgeo.errors import DamagedResultError, ResultError
from rsgeo.gpkg import read_metadata
from rsgeo.resultcheck import check_result
from tests import corpus as C
from tests.test_corpus import (
    CHIPS,
    CLASSES,
    MODEL,
    assert_nothing_written,
    assert_ok,
    assert_one_line_error,
    fingerprint,
    leftovers,
    tiles,
)


def run_rsgeo(*args: str | Path, timeout: float = 0) -> subprocess.CompletedProcess[str]:
    """``rsgeo ARGS --progress none`` in this process: its exit code and what it wrote on stderr."""
    from rsgeo.cli import main

    err = io.StringIO()
    argv = [*map(str, args), "--progress", "none"]
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(["rsgeo", *argv], code, "", err.getvalue())


def assert_no_work(out: Path) -> None:
    """Nothing written and no journal: the mistake was found before the first chip."""
    assert_nothing_written(out)
    assert not journal_path(out).exists(), "a journal exists: the run started encoding before refusing"


@pytest.fixture(scope="module")
def result_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete result (tiles, embeddings, landcover and a query layer) to copy and damage."""
    folder = tmp_path_factory.mktemp("result")
    out = folder / "result.gpkg"
    assert_ok(run_rsgeo("classify", C.rgb(folder), "-o", out, *MODEL, *CLASSES, *CHIPS), out)
    proc = run_rsgeo("query", out, "--text", "harbour")
    assert proc.returncode == 0, proc.stderr
    check_result(out)  # the template itself passes
    return out


@pytest.fixture
def result(tmp_path: Path, result_template: Path) -> Path:
    path = tmp_path / "result.gpkg"
    shutil.copyfile(result_template, path)
    return path


# -- damaged stored results --------------------------------------------------------------------

Damage = Callable[[Path], None]
DAMAGES: list[tuple[str, Damage, list[str]]] = [
    ("embeddings-table-missing", lambda p: C.drop_table(p, "rsgeo_embeddings"), ["rsgeo_embeddings table is missing"]),
    ("tiles-layer-missing", lambda p: C.drop_table(p, "tiles"), ["tiles table is missing"]),
    ("metadata-table-missing", lambda p: C.drop_table(p, "rsgeo_metadata"), ["rsgeo_metadata table is missing"]),
    ("embeddings-truncated", lambda p: C.truncate_table(p, "rsgeo_embeddings", 5), ["5 embeddings for 12 tiles", "truncated"]),
    ("tiles-truncated", lambda p: C.truncate_table(p, "tiles", 6), ["12 embeddings for 6 tiles"]),
    ("landcover-truncated", lambda p: C.truncate_table(p, "landcover", 4), ["'landcover' has 4 of 12 tiles"]),
    ("query-layer-missing", lambda p: C.drop_table(p, "query_harbour"), ["'query_harbour'", "is missing"]),
    ("metadata-not-json", lambda p: C.set_metadata_text(p, "grid", "{width: 256,"), ["metadata is not JSON", "'grid'"]),
    ("metadata-key-missing", lambda p: C.delete_metadata_key(p, "embeddings"), ["no 'embeddings' key"]),
    ("metadata-grid-incomplete", lambda p: C.set_metadata_text(p, "grid", '{"width": 256}'), ["'grid' is incomplete"]),
    ("metadata-layers-not-object", lambda p: C.set_metadata_text(p, "layers", "[1, 2]"), ["'layers' holds list"]),
    ("metadata-bad-dtype", lambda p: C.set_metadata_text(p, "embeddings", '{"dtype": "int8", "dim": 512}'), ["'embeddings' is incomplete", "int8"]),
    ("embedding-blob-short", C.short_embedding, ["embedding of tile 0 has", "bytes, not"]),
    ("corrupt-page", C.corrupt_page, ["damaged"]),
    ("file-truncated", C.truncate_file, ["damaged"]),
    ("header-zeroed", C.zero_header, ["not a SQLite/GeoPackage file"]),
    ("empty-file", lambda p: p.write_bytes(b""), ["the file is empty"]),
]


@pytest.mark.parametrize("damage, words", [(d, w) for _, d, w in DAMAGES], ids=[i for i, _, _ in DAMAGES])
@pytest.mark.parametrize("command", ["query-in-place", "classify-to-new"])
def test_damaged_result_is_one_line_and_left_alone(result: Path, damage: Damage, words: list[str], command: str) -> None:
    damage(result)
    before = fingerprint(result)
    out = result.with_name("new.gpkg")
    if command == "query-in-place":
        proc = run_rsgeo("query", result, "--text", "a harbour")
    else:
        proc = run_rsgeo("classify", result, "-o", out, *CLASSES)
    line = assert_one_line_error(proc, str(result), "damaged", *words, code=2)
    assert "rsgeo embed" in line or "restore" in line
    assert fingerprint(result) == before
    assert not out.exists() and leftovers(result.parent) == []


@pytest.mark.parametrize("damage, words", [(d, w) for _, d, w in DAMAGES], ids=[i for i, _, _ in DAMAGES])
def test_open_result_refuses_a_damaged_result(result: Path, damage: Damage, words: list[str]) -> None:
    damage(result)
    with pytest.raises(DamagedResultError) as caught:
        rsgeo.open_result(result)
    for word in words:
        assert word.lower() in str(caught.value).lower()


def test_damage_message_names_the_scene_to_embed_again(result: Path) -> None:
    scene = read_metadata(result)["scene"]["path"]
    C.truncate_table(result, "rsgeo_embeddings", 3)
    line = assert_one_line_error(run_rsgeo("query", result, "--text", "x"), code=2)
    assert f"rsgeo embed {scene} -o {result} --overwrite" in line


def test_undamaged_result_answers_and_a_newer_schema_is_refused(result: Path) -> None:
    r = rsgeo.open_result(result)
    assert len(r.index) == 12 and r.layers == ["tiles", "cells", "landcover", "query_harbour"]
    C.set_metadata_text(result, "schema_version", "99")
    with pytest.raises(ResultError, match="newer rsgeo"):
        rsgeo.open_result(result)


def test_a_geopackage_that_is_no_result_is_not_called_damaged(tmp_path: Path) -> None:
    other = tmp_path / "roads.gpkg"
    import geopandas as gpd
    from shapely.geometry import Point

    gpd.GeoDataFrame({"a": [1]}, geometry=[Point(0, 0)], crs="EPSG:4326").to_file(other, layer="roads")
    line = assert_one_line_error(run_rsgeo("query", other, "--text", "x"), "not an rsgeo result", code=2)
    assert "damaged" not in line


# -- reserved names ------------------------------------------------------------------------------

RESERVED = ["tiles", "TILES", "rsgeo_embeddings", "RSGEO_Embeddings", "rsgeo_metadata", "layer_styles",
            "Layer_Styles", "gpkg_contents", "GPKG_spatial_ref_sys", "rtree_tiles_geom", "sqlite_master",
            "rsgeo_scenes", "rsgeo_anything"]


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_layer_name_is_refused_before_encoding(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("classify", C.rgb(tmp_path), "-o", out, *MODEL, *CLASSES, *CHIPS, "--layer", name)
    assert_one_line_error(proc, "--layer", name, "cannot be used", code=2)
    assert_no_work(out)


@pytest.mark.parametrize("name", ["rsgeo_embeddings", "Tiles", "gpkg_ogr_contents"])
def test_reserved_layer_name_in_place_keeps_the_result(result: Path, name: str) -> None:
    before = fingerprint(result)
    assert_one_line_error(run_rsgeo("classify", result, *CLASSES, "--layer", name), "cannot be used", code=2)
    proc = run_rsgeo("query", result, "--like-tile", "3", "--layer", name)
    assert_one_line_error(proc, "cannot be used", code=2)
    assert fingerprint(result) == before


def test_layer_name_differing_only_in_case_replaces_the_layer(result: Path) -> None:
    """SQLite's table names ignore case: LANDCOVER replaces landcover, and the metadata lists it once."""
    proc = run_rsgeo("classify", result, "--classes", "field,lake", "--layer", "LANDCOVER")
    assert proc.returncode == 0, proc.stderr
    meta = check_result(result)  # still whole: no layer listed twice or missing
    assert [k.casefold() for k in meta["layers"]].count("landcover") == 1
    assert "c_field" in tiles(result, "LANDCOVER").columns or "field" in tiles(result, "LANDCOVER").columns


def scene_named_gpkg(folder: Path) -> Path:
    """A GeoTIFF whose name ends in .gpkg (the only way a scene can be a -o path: -o must end in .gpkg)."""
    tif = C.rgb(folder, "scene_src.tif")
    path = folder / "scene.gpkg"
    shutil.copyfile(tif, path)
    return path


@pytest.mark.parametrize("how", ["same-path", "dot-dot", "symlinked-folder", "hard-link", "symlink"])
def test_output_that_is_the_input_scene_is_refused(tmp_path: Path, how: str) -> None:
    scene = scene_named_gpkg(tmp_path)
    before = fingerprint(scene)
    (tmp_path / "sub").mkdir()
    if how == "same-path":
        out = scene
    elif how == "dot-dot":
        out = tmp_path / "sub" / ".." / scene.name
    elif how == "symlinked-folder":
        (tmp_path / "alias").symlink_to(tmp_path)
        out = tmp_path / "alias" / scene.name
    elif how == "hard-link":
        out = tmp_path / "sub" / "link.gpkg"
        os.link(scene, out)
    else:
        out = tmp_path / "sub" / "alias.gpkg"
        out.symlink_to(scene)
    proc = run_rsgeo("embed", scene, "-o", out, *MODEL, *CHIPS, "--overwrite")
    assert_one_line_error(proc, "is the scene", "would destroy", code=2)
    assert fingerprint(scene)[:2] == before[:2]
    assert not journal_path(out).exists()


def test_merge_into_one_of_the_batch_outputs_is_refused(tmp_path: Path) -> None:
    scenes = [C.rgb(tmp_path, "a.tif"), C.rgb(tmp_path, "b.tif", seed=1)]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "out-alias").symlink_to(out_dir)
    for merge in (out_dir / "a.gpkg", tmp_path / "out-alias" / "b.gpkg", out_dir / "sub" / ".." / "a.gpkg"):
        (out_dir / "sub").mkdir(exist_ok=True)
        proc = run_rsgeo("batch", *scenes, "-o", out_dir, *MODEL, *CHIPS, "--merge", merge)
        assert_one_line_error(proc, "--merge", "one of the batch's own files", code=2)
        assert sorted(p.name for p in out_dir.iterdir()) == ["sub"]
    # a merge target elsewhere is fine
    merged = tmp_path / "merged.gpkg"
    proc = run_rsgeo("batch", *scenes, "-o", out_dir, *MODEL, *CHIPS, "--merge", merged)
    assert proc.returncode == 0, proc.stderr
    assert len(tiles(merged)) == 24 and check_result(out_dir / "a.gpkg")


# -- input mistakes, all before encoding --------------------------------------------------------

PREFLIGHT = [
    # (id, arguments after the scene and -o, words of the message)
    ("template-stray-closing-brace", [*CLASSES, "--template", "a photo of {} }"], ["template", "stray brace", "single }"]),
    ("template-stray-opening-brace", [*CLASSES, "--template", "a {photo of {}"], ["template", "stray brace"]),
    ("template-named-field", [*CLASSES, "--template", "a {kind} photo of {}"], ["template", "2 fields"]),
    ("template-only-named-field", [*CLASSES, "--template", "a photo of {name}"], ["named field {name}"]),
    ("template-two-fields", [*CLASSES, "--template", "{} next to {}"], ["2 fields"]),
    ("template-format-spec", [*CLASSES, "--template", "a photo of {:>30}"], ["format or conversion"]),
    ("template-conversion", [*CLASSES, "--template", "a photo of {!r}"], ["format or conversion"]),
    ("template-index-field", [*CLASSES, "--template", "a photo of {1}"], ["named field {1}"]),
    ("device-misspelt", [*CLASSES, "--device", "cdua"], ["unknown --device", "cdua", "cuda:N"]),
    ("device-gpu", [*CLASSES, "--device", "gpu"], ["unknown --device 'gpu'"]),
    ("device-bad-index", [*CLASSES, "--device", "cuda:x"], ["unknown --device"]),
    ("device-missing-gpu", [*CLASSES, "--device", "cuda:99"], ["--device cuda:99"]),
    ("device-mps-on-linux", [*CLASSES, "--device", "mps"], ["--device mps", "no Apple MPS"]),
    ("too-many-classes", ["--classes", ",".join(f"class {i}" for i in range(MAX_CLASSES + 1))], [f"at most {MAX_CLASSES}", "--layer"]),
]


@pytest.mark.parametrize("args, words", [(a, w) for _, a, w in PREFLIGHT], ids=[i for i, _, _ in PREFLIGHT])
def test_input_mistake_is_one_line_before_encoding(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("classify", C.rgb(tmp_path), "-o", out, *MODEL, *CHIPS, *args, timeout=120)
    assert_one_line_error(proc, *words, code=2)
    assert_no_work(out)


def test_escaped_braces_in_a_template_are_literal(tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    assert_ok(run_rsgeo("classify", C.rgb(tmp_path), "-o", out, *MODEL, *CLASSES, *CHIPS,
                        "--template", "a {{satellite}} photo of {}"), out)
    prompts = read_metadata(out)["layers"]["landcover"]["prompts"]
    assert prompts[0] == ["a {satellite} photo of forest"]


def test_the_most_classes_a_layer_holds_fit(result: Path) -> None:
    names = [f"class {i}" for i in range(MAX_CLASSES)]
    proc = run_rsgeo("classify", result, "--classes", ",".join(names), "--layer", "many", "--no-rasters", timeout=300)
    assert proc.returncode == 0, proc.stderr
    fields = pyogrio.read_info(result, layer="many")["fields"]
    assert len(fields) == MAX_CLASSES + 6  # + tile columns, top class and score (fid and geometry are not fields)


@pytest.mark.parametrize(
    "content, words",
    [
        ("une vue aérienne de {}.\n".encode("latin-1"), ["not UTF-8", "save it as UTF-8"]),
        (b"# only a comment\n\n", ["holds no template"]),
        ("a photo of {} }\n".encode(), ["template", "stray brace"]),
    ],
    ids=["latin-1", "no-template", "stray-brace"],
)
def test_bad_templates_file_is_one_line(tmp_path: Path, content: bytes, words: list[str]) -> None:
    templates = tmp_path / "templates.txt"
    templates.write_bytes(content)
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("classify", C.rgb(tmp_path), "-o", out, *MODEL, *CLASSES, *CHIPS, "--templates-file", templates)
    assert_one_line_error(proc, *words, code=2)
    assert_no_work(out)


def test_templates_file_with_a_bom_reads(tmp_path: Path) -> None:
    templates = tmp_path / "templates.txt"
    templates.write_text("\ufeffan aerial view of {}\n", encoding="utf-8")
    out = tmp_path / "out.gpkg"
    assert_ok(run_rsgeo("classify", C.rgb(tmp_path), "-o", out, *MODEL, *CLASSES, *CHIPS, "--templates-file", templates), out)
    assert read_metadata(out)["layers"]["landcover"]["prompts"][0] == ["an aerial view of forest"]


CLASS_SET_FILES = [
    ("synonyms-a-number", "classes:\n  - name: water\n    synonyms: 5\n  - forest\n", ["synonyms 5"]),
    ("synonyms-nested", "classes:\n  - name: water\n    synonyms: [[lake]]\n  - forest\n", ["give a list of names"]),
    ("names-a-list", "classes:\n  - name: water\n    names: [pt, água]\n  - forest\n", ["mapping of language"]),
    ("names-a-number", "classes:\n  - name: water\n    names: {pt: 5}\n  - forest\n", ["'pt' names 5"]),
    ("mapping-synonyms-a-number", "classes:\n  water: 5\n  forest: [woodland]\n", ["synonyms 5"]),
    ("name-a-mapping", "classes:\n  - name: {en: water}\n  - forest\n", ["is not text"]),
    ("classes-a-string", "classes: water, forest\n", ["must be a list"]),
    ("a-scalar", "42\n", ["no 'classes' list"]),
]


@pytest.mark.parametrize("text, words", [(t, w) for _, t, w in CLASS_SET_FILES], ids=[i for i, _, _ in CLASS_SET_FILES])
def test_class_set_file_of_the_wrong_shape_is_one_line(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("classify", C.rgb(tmp_path), "-o", out, *MODEL, *CHIPS, "--class-set", path)
    assert_one_line_error(proc, *words, code=2)
    assert_no_work(out)


def test_class_set_synonym_given_as_one_string_is_one_synonym(tmp_path: Path) -> None:
    """``synonyms: lake`` is the synonym "lake", not the letters l, a, k, e."""
    path = tmp_path / "classes.yaml"
    path.write_text("classes:\n  - name: water\n    synonyms: lake\n  - forest\n", encoding="utf-8")
    from rsgeo.classsets.files import read_class_set_file

    assert read_class_set_file(path).classes[0].synonyms == ("lake",)


LOCATIONS = [
    ("overflow", "1e400,5", ["no finite coordinates"]),
    ("nan", "nan,5", ["cannot read location"]),
    ("infinite", "inf,5", ["cannot read location"]),
    ("latitude-beyond-the-pole", "13.5,95@EPSG:4326", ["not on the globe"]),
    ("longitude-far-off", "1000,40@EPSG:4326", ["not on the globe"]),
    ("unknown-crs", "500100,3999900@EPSG:999999", ["unknown CRS", "EPSG:999999"]),
    ("outside-the-scene", "0,0", ["lies on no encoded chip"]),
    ("outside-the-crs-area", "-170,-80@EPSG:4326", ["lies on no encoded chip"]),
    ("empty-wkt", "POINT EMPTY", ["no finite coordinates"]),
]


@pytest.mark.parametrize("location, words", [(loc, w) for _, loc, w in LOCATIONS], ids=[i for i, _, _ in LOCATIONS])
def test_absurd_example_location_is_refused_before_encoding(tmp_path: Path, location: str, words: list[str]) -> None:
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("query", C.rgb(tmp_path), "-o", out, *MODEL, *CHIPS, f"--like={location}")
    assert_one_line_error(proc, *words, code=2)
    assert_no_work(out)


@pytest.mark.parametrize("tile", ["12", "99999"])
def test_example_tile_outside_the_grid_is_refused_before_encoding(tmp_path: Path, tile: str) -> None:
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("query", C.rgb(tmp_path), "-o", out, *MODEL, *CHIPS, "--like-tile", tile)
    assert_one_line_error(proc, f"tile {tile}", "outside the chip grid", "0 to 11", code=2)
    assert_no_work(out)


# -- rasters that used to read wrong silently -----------------------------------------------------


def embeddings(path: Path) -> list[tuple[int, bytes]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT tile_id, embedding FROM rsgeo_embeddings ORDER BY tile_id").fetchall()
    finally:
        db.close()


def test_paletted_scene_reads_as_its_colour_table(tmp_path: Path) -> None:
    """The test:hash encoder hashes the chip pixels: equal embeddings mean equal RGB chips."""
    out, reference = tmp_path / "paletted.gpkg", tmp_path / "rgb.gpkg"
    assert_ok(run_rsgeo("embed", C.paletted(tmp_path), "-o", out, *MODEL, *CHIPS), out)
    assert_ok(run_rsgeo("embed", C.palette_expanded(tmp_path), "-o", reference, *MODEL, *CHIPS), reference)
    assert embeddings(out) == embeddings(reference)
    assert read_metadata(out)["read"]["palette"] == "rgb"
    # asked for explicitly, the indices are read as grey (and differ)
    grey = tmp_path / "grey.gpkg"
    assert_ok(run_rsgeo("embed", tmp_path / "paletted.tif", "-o", grey, *MODEL, *CHIPS, "--bands", "1"), grey)
    assert embeddings(grey) != embeddings(reference)


def test_paletted_scene_with_a_stretch_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("embed", C.paletted(tmp_path), "-o", out, *MODEL, *CHIPS, "--stretch", "range:0,15")
    assert_one_line_error(proc, "paletted", "colour table", "--stretch", "--bands 1", code=2)
    assert_nothing_written(out)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_scene_is_refused(tmp_path: Path, dtype: str) -> None:
    out = tmp_path / "out.gpkg"
    proc = run_rsgeo("classify", C.complex_scene(tmp_path, dtype), "-o", out, *MODEL, *CLASSES, *CHIPS)
    assert_one_line_error(proc, "complex numbers", dtype, "amplitude", code=2)
    assert_no_work(out)


def test_geographic_scene_on_mars_is_measured_on_mars(tmp_path: Path) -> None:
    scene = C.mars(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(run_rsgeo("embed", scene, "-o", out, *MODEL, "--chip-size", "640m"), out)
    size = read_metadata(out)["grid"]["size_px"]
    import rasterio

    with rasterio.open(scene) as ds:
        cx, cy = ds.transform * (ds.width / 2, ds.height / 2)
    mars, earth = Geod(a=3396190.0, rf=169.894447223612), Geod(ellps="WGS84")
    pixel = (mars.inv(cx, cy, cx + 0.0002, cy)[2] + mars.inv(cx, cy, cx, cy + 0.0002)[2]) / 2
    earth_pixel = (earth.inv(cx, cy, cx + 0.0002, cy)[2] + earth.inv(cx, cy, cx, cy + 0.0002)[2]) / 2
    assert size == round(640 / pixel)
    assert size != round(640 / earth_pixel)  # the two bodies give different chips here


def test_metres_on_a_crs_without_linear_units_is_one_line(tmp_path: Path) -> None:
    scene = C.unknown_units(tmp_path)
    out = tmp_path / "out.gpkg"
    for option in (["--chip-size", "640m"], ["--stride", "300m", *CHIPS], ["--gsd", "20"]):
        proc = run_rsgeo("classify", scene, "-o", out, *MODEL, *CLASSES, *option)
        assert_one_line_error(proc, "no", "linear unit", "in pixels", code=2)
        assert_no_work(out)
    assert_ok(run_rsgeo("classify", scene, "-o", out, *MODEL, *CLASSES, *CHIPS), out)  # pixels are fine


def test_metres_on_a_local_crs_in_metres(tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    assert_ok(run_rsgeo("embed", C.local_metres(tmp_path), "-o", out, *MODEL, "--chip-size", "640m"), out)
    assert read_metadata(out)["grid"]["size_px"] == 64


def test_misnamed_geotiff_is_still_a_scene(tmp_path: Path) -> None:
    scene = scene_named_gpkg(tmp_path)
    out = tmp_path / "out.gpkg"
    assert_ok(run_rsgeo("classify", scene, "-o", out, *MODEL, *CLASSES, *CHIPS), out)
    assert len(tiles(out)) == 12
