"""Results as GeoParquet (issue 21): read back by GeoPandas, PyArrow and DuckDB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from pyproj import CRS

import rsgeo
from rsgeo.errors import Cancelled
from tests.conftest import run_cli, shared

CHIPS = ("--chip-size", "64", "--bands", "1,2,3")
SCENES = ("RGB.byte.tif", "OSBS_029.tif")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> list[Path]:
    """Two real scenes in two UTM zones: land cover (every tile) and a top-10 query (some tiles) each."""
    out = tmp_path_factory.mktemp("export")
    run_cli("batch", *(str(shared(s)) for s in SCENES), "-o", str(out), "--model", f"local-dir:{tiny_clip_dir}", *CHIPS,
            "-q", "--classes", "forest,water,urban area", "--text", "coral reef", "--top-k", "10")
    return [out / f"{Path(s).stem}.gpkg" for s in SCENES]


def stored(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Tile ids and float32 embeddings as the result stores them, and the recorded dim."""
    from rsgeo.store import GpkgEmbeddings

    meta = rsgeo.open_result(path).metadata
    dim = int(meta["embeddings"]["dim"])
    store = GpkgEmbeddings(path, dim=dim, dtype=meta["embeddings"]["dtype"])
    parts = list(store.iter_chunks())
    store.close()
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[2] for p in parts]), dim


def test_one_result_reads_back_with_geopandas(results: list[Path], tmp_path: Path) -> None:
    import geopandas as gpd
    import pyarrow.parquet as pq

    out = tmp_path / "one.parquet"
    proc = run_cli("export", str(results[0]), "--format", "geoparquet", "-o", str(out))
    assert f"wrote {out}" in proc.stderr
    frame = gpd.read_parquet(out)
    ids, emb, dim = stored(results[0])
    assert len(frame) == len(ids) > 50
    tiles = pyogrio.read_dataframe(results[0], layer="tiles")
    assert CRS(frame.crs) == CRS(tiles.crs) == CRS.from_epsg(32618)
    assert list(frame["tile_id"]) == list(ids)
    assert set(frame["scene"]) == {"RGB.byte"}
    got = np.stack(frame["embedding"].to_numpy())
    assert got.shape == (len(ids), dim) and got.dtype == np.float32
    np.testing.assert_array_equal(got, emb)
    # the polygons are the tiles layer's
    t = tiles.set_index("tile_id").loc[frame["tile_id"]]
    assert frame.geometry.reset_index(drop=True).geom_equals_exact(t.geometry.reset_index(drop=True), 1e-6).all()

    f = pq.ParquetFile(out)
    assert str(f.schema_arrow.field("embedding").type) == f"fixed_size_list<element: float>[{dim}]"
    geo = json.loads(f.metadata.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    assert CRS.from_json_dict(geo["columns"]["geometry"]["crs"]) == CRS.from_epsg(32618)
    bbox = geo["columns"]["geometry"]["bbox"]
    np.testing.assert_allclose(bbox, frame.total_bounds, rtol=0, atol=1e-6)
    info = json.loads(f.metadata.metadata[b"rsgeo"])
    meta = rsgeo.open_result(results[0]).metadata
    assert info["model"]["model_id"] == meta["model"]["model_id"] and info["embedding"]["dim"] == dim
    assert info["scenes"][0]["tiles"] == len(ids)
    assert info["columns"]["query_coral_reef_similarity"] == {"layer": "query_coral_reef", "column": "similarity",
                                                             "kind": "query"}


def test_answer_columns_equal_the_layers(results: list[Path], tmp_path: Path) -> None:
    import geopandas as gpd

    out = rsgeo.export_results(results, tmp_path / "two.parquet", chunk=16)  # many small batches
    frame = gpd.read_parquet(out)
    assert CRS(frame.crs) == CRS.from_epsg(4326)  # two UTM zones: the merged file's rule
    for path, scene in zip(results, ("RGB.byte", "OSBS_029")):
        part = frame[frame["scene"] == scene].set_index("tile_id")
        land = pyogrio.read_dataframe(path, layer="landcover").set_index("tile_id")
        assert len(part) == len(land)
        for col in ("forest", "water", "urban_area", "top_score"):
            np.testing.assert_array_equal(part.loc[land.index, f"landcover_{col}"].to_numpy(np.float32),
                                          land[col].to_numpy(np.float32))
        assert (part.loc[land.index, "landcover_top_class"] == land["top_class"]).all()
        query = pyogrio.read_dataframe(path, layer="query_coral_reef").set_index("tile_id")
        assert len(query) == 10
        np.testing.assert_array_equal(part.loc[query.index, "query_coral_reef_similarity"].to_numpy(np.float32),
                                      query["similarity"].to_numpy(np.float32))
        assert part.loc[query.index, "query_coral_reef_rank"].tolist() == query["rank"].tolist()
        others = part.drop(index=query.index)
        assert others["query_coral_reef_similarity"].isna().all()  # not in the top 10: null, not 0
        ids, emb, _ = stored(path)
        np.testing.assert_array_equal(np.stack(part.loc[ids, "embedding"].to_numpy()), emb)


def test_duckdb_reads_the_file(results: list[Path], tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    out = rsgeo.export_results(results, tmp_path / "duck.parquet")
    rows = duckdb.sql(
        f"SELECT scene, count(*), min(len(embedding)), max(len(embedding)), count(query_coral_reef_similarity) "
        f"FROM '{out}' GROUP BY scene ORDER BY scene"
    ).fetchall()
    n = {p.stem: stored(p)[0].size for p in results}
    dim = stored(results[0])[2]
    assert rows == [(scene, n[scene], dim, dim, 10) for scene in sorted(n)]
    # a nearest-tile search in SQL gives the tile whose stored embedding is nearest
    ids, emb, _ = stored(results[1])
    probe = emb[3].tolist()
    best = duckdb.sql(
        f"SELECT tile_id FROM '{out}' WHERE scene = 'OSBS_029' "
        f"ORDER BY array_inner_product(embedding::FLOAT[{dim}], {probe}::FLOAT[{dim}]) DESC LIMIT 1"
    ).fetchall()
    assert best == [(int(ids[np.argmax(emb @ emb[3])]),)]


def test_the_output_is_written_whole_or_not_at_all(results: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2  # after two batches were written

    with pytest.raises(Cancelled):
        rsgeo.export_results(results, out, chunk=8, cancel=cancel)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no half file, no temporary left
    rsgeo.export_results(results[:1], out)
    before = out.stat()
    again = run_cli("export", str(results[0]), "-o", str(out), check=False)
    assert again.returncode == 1 and "already exists; pass --overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    wrong = run_cli("export", str(results[0]), "-o", str(tmp_path / "x.gpkg"), check=False)
    assert wrong.returncode == 1 and "must end in .parquet" in wrong.stderr
    assert out.stat().st_mtime_ns == before.st_mtime_ns


def test_results_of_different_models_are_not_exported_together(results: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "hash.gpkg"
    run_cli("embed", str(shared("OSBS_029.tif")), "-o", str(other), "--model", "test:hash", *CHIPS, "-q")
    proc = run_cli("export", str(results[0]), str(other), "-o", str(tmp_path / "mixed.parquet"), check=False)
    assert proc.returncode == 2 and "one model only" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mixed.parquet").exists()


def test_a_float16_result_exports_its_values_widened(results: list[Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    half = tmp_path / "half.gpkg"
    run_cli("embed", str(shared("OSBS_029.tif")), "-o", str(half), "--model", "test:hash", *CHIPS, "-q",
            "--embedding-dtype", "float16")
    with sqlite3.connect(half) as db:
        blob = db.execute("SELECT embedding FROM rsgeo_embeddings ORDER BY tile_id LIMIT 1").fetchone()[0]
    out = rsgeo.export_results([half], tmp_path / "half.parquet")
    first = pq.read_table(out, columns=["embedding"]).column(0)[0].as_py()
    np.testing.assert_array_equal(np.asarray(first, np.float32), np.frombuffer(blob, "<f2").astype(np.float32))
