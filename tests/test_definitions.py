"""The shared definitions: lengths with units, model names, the result schema's helpers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rsgeo.definitions import schema
from rsgeo.definitions.lengths import Length, LengthError
from rsgeo.definitions.models import DEFAULT_MODEL, ModelName, canonical_model_id


@pytest.mark.parametrize("text,value,unit", [
    (224, 224.0, "px"), ("224", 224.0, "px"), (" 224px ", 224.0, "px"), ("500m", 500.0, "m"), ("0.5km", 500.0, "m"),
    ("2.5M", 2.5, "m"), ("1e3m", 1000.0, "m"),
])
def test_lengths_parse_with_their_units(text: object, value: float, unit: str) -> None:
    length = Length.parse(text)  # type: ignore[arg-type]
    assert (length.value, length.unit) == (value, unit)
    assert Length.parse(str(length)) == length


@pytest.mark.parametrize("text,reason", [
    ("big", "syntax"), ("", "syntax"), ("12 ft", "syntax"), (True, "syntax"), ("0", "positive"), ("-64", "positive"),
    ("-500m", "positive"), ("infm", "positive"), ("nan", "positive"), ("22.5", "whole"), ("22.5px", "whole"),
])
def test_bad_lengths_say_why(text: object, reason: str) -> None:
    with pytest.raises(LengthError) as caught:
        Length.parse(text)  # type: ignore[arg-type]
    assert caught.value.reason == reason


def test_read_options_hold_lengths_and_name_the_option_when_wrong() -> None:
    from rsgeo.errors import OptionError
    from rsgeo.scene import ReadOptions

    opts = ReadOptions(chip_size="500m", stride=112)
    assert opts.chip_size == Length(500.0, "m") and opts.stride == Length(112.0, "px")
    with pytest.raises(OptionError, match="--stride must be a positive length"):
        ReadOptions(stride="0m")


@pytest.mark.parametrize("text,scheme,value", [
    ("rs-m-clip", "registry", "rs-m-clip"), ("arch:ViT-B-32", "arch", "ViT-B-32"), ("hf-hub:org/repo", "hf-hub", "org/repo"),
    ("local-dir:/m", "local-dir", "/m"), ("hf-clip:./x", "hf-clip", "./x"), ("test:hash", "test", "hash"),
])
def test_model_names(text: str, scheme: str, value: str) -> None:
    name = ModelName.parse(text)
    assert (name.scheme, name.value, str(name)) == (scheme, value, text)


def test_model_names_canonical_and_bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert canonical_model_id("local-dir:model") == f"local-dir:{tmp_path.resolve() / 'model'}"
    assert canonical_model_id("arch:ViT-B-32") == "arch:ViT-B-32"
    for bad in ("", "  ", "arch:", "local-dir:"):
        with pytest.raises(ValueError):
            ModelName.parse(bad)
    from rsgeo.zoo.registry import get_model

    assert get_model(DEFAULT_MODEL).name == DEFAULT_MODEL


def test_temporary_and_journal_names_round_trip() -> None:
    out = Path("/data/run.gpkg")
    name = schema.temporary_name(out, 4242)
    assert name.startswith(".run.tmp-") and schema.temporary_pid(out, name) == 4242
    assert schema.temporary_pid(out, ".run.tmp-x.gpkg") is None and schema.temporary_pid(out, ".other.tmp-1.gpkg") is None
    assert schema.journal_path(out) == Path("/data/run.gpkg.rsgeo-partial")


@pytest.mark.parametrize("name,ok", [
    ("landcover", True), ("query_solar", True), ("mein layer ü", True), ("tiles", False), ("TILES", False),
    ("rsgeo_embeddings", False), ("rsgeo_anything", False), ("gpkg_contents", False), ("layer_styles", False),
    ("rtree_tiles_geom", False), ("sqlite_master", False), ("", False), ("  ", False), ('a"b', False),
])
def test_reserved_layer_names(name: str, ok: bool) -> None:
    assert (schema.reserved_layer_reason(name) is None) == ok


def test_metadata_round_trips_and_damage_is_named(tmp_path: Path) -> None:
    meta = {"grid": {"width": 3}, "layers": {"landcover": {"kind": "landcover", "classes": ["a", "b"]},
                                              "query_x": {"kind": "query", "texts": ["x"], "query": "x"}}}
    assert schema.decode_metadata(schema.encode_metadata(meta)) == meta
    with pytest.raises(ValueError, match="'grid'"):
        schema.decode_metadata([("grid", "{not json")])
    records = schema.layer_records(meta)
    assert [(r.name, r.kind, r.texts) for r in records] == [("landcover", "landcover", ("a", "b")), ("query_x", "query", ("x",))]
    db_path = tmp_path / "m.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute(f"CREATE TABLE {schema.METADATA_TABLE} (key TEXT, value TEXT)")
        db.executemany(f"INSERT INTO {schema.METADATA_TABLE} VALUES (?, ?)", schema.encode_metadata(meta))
    assert schema.decode_metadata(schema.read_metadata_rows(db_path)) == meta


def test_grid_record_round_trips_through_a_real_result(tmp_path: Path) -> None:
    from tests.conftest import run_cli, shared
    from rsgeo.gpkg import read_metadata
    from rsgeo.metadata import grid_from_metadata, grid_record

    out = tmp_path / "r.gpkg"
    run_cli("embed", str(shared("RGB.byte.tif")), "-o", str(out), "--model", "test:hash", "--chip-size", "200", "-q")
    meta = read_metadata(out)
    grid = grid_from_metadata(meta)
    assert grid_record(grid, meta["grid"]["gsd"]).to_dict() == meta["grid"]
    assert schema.GridRecord.from_dict(meta["grid"]).n_cols == grid.n_cols
