"""The approximate archive index (issue 21): recall against exact search, stale indexes never used."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from benchmarks.synthetic_result import build_result, cluster_centres
from rsgeo.answers import QuerySpec
from rsgeo.archive import exact_search, indexed_search
from rsgeo.archive_index import ArchiveIndex
from rsgeo.collection import open_collection
from rsgeo.errors import ResultError

pytest.importorskip("faiss")

DIM = 128
TILES = (20_000, 18_000, 12_000)  # 50,000 vectors in three results
K = 50


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("synthetic-archive")
    paths = []
    for seed, n in enumerate(TILES):
        path = folder / f"part{seed}.gpkg"
        build_result(path, n, dim=DIM, chip=16, seed=seed, clusters=64)
        paths.append(path)
    return paths


def queries(n: int, seed: int = 7) -> np.ndarray:
    """Unit vectors near the archive's cluster centres (as a text lands near the tiles it describes)."""
    rng = np.random.default_rng(seed)
    centres = cluster_centres(64, DIM)
    q = centres[rng.integers(0, 64, n)] + rng.standard_normal((n, DIM)).astype(np.float32) * np.float32(0.6 / np.sqrt(DIM))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def random_directions(n: int, seed: int = 11) -> np.ndarray:
    """Unit vectors in random directions: far from every tile, as a text's vector is from image embeddings
    (the hard case for an IVF index: the best tiles are extremes spread over many cells)."""
    q = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("make_queries", [queries, random_directions], ids=["near-the-tiles", "random-directions"])
def test_recall_at_50_against_exact_search(synthetic: list[Path], tmp_path: Path, make_queries: object) -> None:
    members = open_collection(synthetic)
    vectors = make_queries(20)  # type: ignore[operator]
    specs = [QuerySpec((f"q{i}",), top_k=K) for i in range(len(vectors))]
    exact = exact_search(members, specs, vectors)
    index_file = tmp_path / "archive.rsgeo-index"
    approx = indexed_search(members, specs, vectors, index_file, exact_below=0)
    assert index_file.is_file()
    recalls = []
    for e, a in zip(exact, approx):
        truth = set(zip(e.member.tolist(), e.tile_ids.tolist()))
        found = set(zip(a.member.tolist(), a.tile_ids.tolist()))
        assert len(a) == K
        recalls.append(len(truth & found) / K)
        # similarities written are exact ones, best first
        assert np.all(np.diff(a.similarity) <= 0) and a.similarity[0] <= e.similarity[0] + 1e-6
    assert np.mean(recalls) >= 0.95, recalls
    # the index file is reused as it is (not rebuilt) while the archive is unchanged
    stamp = index_file.stat().st_mtime_ns
    again = indexed_search(members, specs[:2], vectors[:2], index_file, exact_below=0)
    assert index_file.stat().st_mtime_ns == stamp
    assert [list(h.tile_ids) for h in again] == [list(h.tile_ids) for h in approx[:2]]


def test_below_the_threshold_the_search_is_exact_and_builds_nothing(synthetic: list[Path], tmp_path: Path) -> None:
    members = open_collection(synthetic[2:])
    vectors = queries(3)
    specs = [QuerySpec((f"q{i}",), top_k=K) for i in range(len(vectors))]
    index_file = tmp_path / "unused.rsgeo-index"
    got = indexed_search(members, specs, vectors, index_file)  # 12,000 tiles: under EXACT_BELOW
    want = exact_search(members, specs, vectors)
    assert not index_file.exists()
    for g, w in zip(got, want):
        assert list(g.tile_ids) == list(w.tile_ids)


def test_a_stale_index_is_refused_or_rebuilt_never_used(synthetic: list[Path], tmp_path: Path) -> None:
    import shutil

    parts = [tmp_path / p.name for p in synthetic[1:]]
    for src, dst in zip(synthetic[1:], parts):
        shutil.copyfile(src, dst)
    members = open_collection(parts)
    vectors = queries(2)
    specs = [QuerySpec((f"q{i}",), top_k=10) for i in range(2)]
    index_file = tmp_path / "a.rsgeo-index"
    indexed_search(members, specs, vectors, index_file, exact_below=0)
    built = ArchiveIndex.load(index_file)
    assert built.stale_reason(members) is None and len(built) == sum(TILES[1:])

    # rewritten with the very same embeddings (a layer added in place): confirmed by hash, still used
    os.utime(parts[0], ns=(1, 1))
    assert ArchiveIndex.load(index_file).stale_reason(members) is None

    # one embedding changed: stale, refused in one line naming the file and the fix
    with sqlite3.connect(parts[0]) as db:
        (blob,) = db.execute("SELECT embedding FROM rsgeo_embeddings WHERE tile_id = 5").fetchone()
        v = np.frombuffer(blob, "<f4").copy()
        v[0] = -v[0]
        db.execute("UPDATE rsgeo_embeddings SET embedding = ? WHERE tile_id = 5", (v.tobytes(),))
    members = open_collection(parts)
    with pytest.raises(ResultError, match=r"stale: the embeddings of part1.gpkg changed since; rebuild it with --rebuild-index"):
        indexed_search(members, specs, vectors, index_file, exact_below=0)
    # another set of results: stale too
    with pytest.raises(ResultError, match="built from 2 results, the archive asked has 1"):
        indexed_search(open_collection(parts[1:]), specs, vectors, index_file, exact_below=0)
    # rebuilt when asked; then it describes the archive again
    indexed_search(members, specs, vectors, index_file, exact_below=0, rebuild=True)
    assert ArchiveIndex.load(index_file).stale_reason(members) is None


def test_a_damaged_index_file_is_refused_in_one_line(synthetic: list[Path], tmp_path: Path) -> None:
    members = open_collection(synthetic[2:])
    index_file = tmp_path / "d.rsgeo-index"
    ArchiveIndex.build(members).save(index_file)
    loaded = ArchiveIndex.load(index_file)  # the FAISS part streamed from the file
    assert len(loaded) == TILES[2] and loaded.index.ntotal == TILES[2] and loaded.stale_reason(members) is None
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(ResultError, match="is not an rsgeo archive index"):
        ArchiveIndex.load(index_file)


def test_the_worker_asks_an_archive_too_large_to_hold_through_the_index_in_its_folder(
    synthetic: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The QGIS panel's worker: an index in the archive's folder that describes it is read once and
    used (the answer is query_archive's with that index); once stale, the folder is searched exactly."""
    import shutil

    import pyogrio

    import rsgeo.worker
    from rsgeo.archive import query_archive
    from rsgeo.archive_index import find_index
    from rsgeo.worker import Worker

    folder = tmp_path / "archive"
    folder.mkdir()
    for p in synthetic:
        shutil.copy(p, folder / p.name)
    index_file = folder / "archive.faiss"
    ArchiveIndex.build(open_collection([folder])).save(index_file)
    (folder / "notes.txt").write_text("not an index")  # passed over
    monkeypatch.setattr(rsgeo.worker, "HELD_ARCHIVE_TILES", 0)
    worker = Worker()
    opened = worker.handle({"id": 1, "op": "open_archive", "paths": [str(folder)]})
    assert opened["ok"], opened
    assert opened["result"]["held"] is False and opened["result"]["index"] == str(index_file)

    def same(got: Path, want: Path) -> None:
        a, b = (pyogrio.read_dataframe(p, layer="query_harbour") for p in (got, want))
        assert len(a) == K and list(a["scene"]) == list(b["scene"]) and list(a["tile_id"]) == list(b["tile_id"])
        np.testing.assert_allclose(a["similarity"], b["similarity"], atol=1e-6, rtol=0)

    out = tmp_path / "panel.gpkg"
    reply = worker.handle({"id": 2, "op": "archive_query", "paths": [str(folder)], "text": ["harbour"], "top_k": K,
                           "output": str(out)})
    assert reply["ok"] and reply["result"]["index"] == str(index_file), reply
    query_archive([folder], ["harbour"], tmp_path / "indexed.gpkg", top_k=K, index=index_file, exact_below=0)
    same(out, tmp_path / "indexed.gpkg")
    shutil.copy(folder / "part0.gpkg", folder / "part3.gpkg")  # a result added: the index no longer describes it
    assert find_index(open_collection([folder]), folder) is None
    reply = worker.handle({"id": 3, "op": "archive_query", "paths": [str(folder)], "text": ["harbour"], "top_k": K,
                           "output": str(out)})
    assert reply["ok"] and reply["result"]["index"] is None, reply
    query_archive([folder], ["harbour"], tmp_path / "exact.gpkg", top_k=K)
    same(out, tmp_path / "exact.gpkg")
