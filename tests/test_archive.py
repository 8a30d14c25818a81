"""One query over many results (issue 21): global top-k, the scene of each tile, one CRS, one model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from pyproj import CRS

import rsgeo
from rsgeo.errors import OptionError, ResultError
from tests.conftest import run_cli, shared

SCENES = ("RGB.byte.tif", "L7_ETMs.tif", "OSBS_029.tif")
TEXTS = ("coral reef", "pine forest")
PER_SCENE_K = 6
CHIPS = ("--chip-size", "64", "--bands", "1,2,3")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> dict[str, Path]:
    """Three real scenes (three UTM zones) encoded and queried per scene by one batch, merged by ``--merge``."""
    work = tmp_path_factory.mktemp("archive")
    out = work / "results"
    out.mkdir()
    merged = work / "merged.gpkg"
    args = [*(str(shared(s)) for s in SCENES), "-o", str(out), "--model", f"local-dir:{tiny_clip_dir}", *CHIPS, "-q",
            "--top-k", str(PER_SCENE_K), "--merge", str(merged)]
    for t in TEXTS:
        args += ["--text", t]
    run_cli("batch", *args)
    return {"dir": out, "merged": merged, "work": work}


def _ranked(frame: object, k: int, scenes: list[str]) -> object:
    """The k best rows of a merged layer, ordered as the archive ranks them (similarity, scene order, tile id)."""
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    order = {name: i for i, name in enumerate(scenes)}
    f = frame.assign(_scene=frame["scene"].map(order))
    return f.sort_values(["similarity", "_scene", "tile_id"], ascending=[False, True, True]).head(k).reset_index(drop=True)


@pytest.mark.parametrize("how", ["cli-files", "api-folder"])
def test_archive_query_equals_the_merge_of_the_per_scene_answers(archive: dict[str, Path], tmp_path: Path, how: str) -> None:
    answer = tmp_path / "answer.gpkg"
    if how == "cli-files":
        k = 5
        results = [str(archive["dir"] / f"{Path(s).stem}.gpkg") for s in SCENES]
        text_args = [a for t in TEXTS for a in ("--text", t)]
        proc = run_cli("query", *results, *text_args, "--top-k", str(k), "-o", str(answer))
        assert f"wrote {answer}" in proc.stderr
    else:  # a folder (its results by name), small chunks: the running top-k carried across chunks
        k = PER_SCENE_K
        rsgeo.query_archive([archive["dir"]], TEXTS, answer, top_k=k, chunk=7)
    order = [Path(s).stem for s in SCENES] if how == "cli-files" else sorted(Path(s).stem for s in SCENES)
    layers = dict(pyogrio.list_layers(answer))
    assert {"query_coral_reef", "query_pine_forest", "rsgeo_scenes"} <= set(layers)
    for layer in ("query_coral_reef", "query_pine_forest"):
        got = pyogrio.read_dataframe(answer, layer=layer)
        want = _ranked(pyogrio.read_dataframe(archive["merged"], layer=layer), k, order)
        assert len(got) == k
        assert CRS(got.crs) == CRS(want.crs) == CRS.from_epsg(4326)  # three UTM zones: the merge's rule
        assert list(got["scene"]) == list(want["scene"])
        assert list(got["tile_id"]) == list(want["tile_id"])
        np.testing.assert_allclose(got["similarity"], want["similarity"], atol=1e-6, rtol=0)
        assert list(got["rank"]) == list(range(1, k + 1))
        assert np.all(np.diff(got["similarity"].to_numpy()) <= 0)
        assert got.geometry.geom_equals_exact(want.geometry, tolerance=1e-7).all()
    scenes = pyogrio.read_dataframe(answer, layer="rsgeo_scenes")
    assert list(scenes["scene"]) == order
    assert (scenes["tiles"] > 0).all()


def test_threshold_keeps_every_tile_above_it_across_the_archive(archive: dict[str, Path], tmp_path: Path) -> None:
    merged = pyogrio.read_dataframe(archive["merged"], layer="query_coral_reef")
    cut = float(np.sort(merged["similarity"].to_numpy())[-4])  # the 4th best of the per-scene bests
    out = rsgeo.query_archive([archive["dir"]], [TEXTS[0]], tmp_path / "t.gpkg", threshold=cut)
    got = pyogrio.read_dataframe(out, layer="query_coral_reef")
    assert len(got) >= 4 and (got["similarity"] >= cut - 1e-7).all()


def test_results_of_different_models_are_refused_in_one_line(archive: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other_model.gpkg"
    run_cli("embed", str(shared("OSBS_029.tif")), "-o", str(other), "--model", "test:hash", *CHIPS, "-q")
    answer = tmp_path / "mixed.gpkg"
    proc = run_cli("query", str(archive["dir"] / "RGB.byte.gpkg"), str(other), "--text", "x", "-o", str(answer), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("rsgeo: error: other_model.gpkg was encoded with 'test:hash'")
    assert "RGB.byte.gpkg" in lines[0] and "--model" in lines[0]
    assert not answer.exists()
    with pytest.raises(ResultError, match="one model only"):
        rsgeo.query_archive([archive["dir"] / "RGB.byte.gpkg", other], ["x"], tmp_path / "api.gpkg")


def test_archive_mistakes_are_one_line(archive: dict[str, Path], tmp_path: Path) -> None:
    results = [str(archive["dir"] / "RGB.byte.gpkg"), str(archive["dir"] / "L7_ETMs.gpkg")]
    no_output = run_cli("query", *results, "--text", "x", check=False)
    assert no_output.returncode == 2 and "give it with -o" in no_output.stderr
    examples = run_cli("query", *results, "--like-tile", "3", "-o", str(tmp_path / "a.gpkg"), check=False)
    assert examples.returncode == 2 and "--like-tile is for one result" in examples.stderr
    before = Path(results[0]).stat()
    into_input = run_cli("query", *results, "--text", "x", "-o", results[0], "--overwrite", check=False)
    assert into_input.returncode == 2 and "one of the results asked" in into_input.stderr
    after = Path(results[0]).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # the input was left alone
    missing = run_cli("query", *results, str(tmp_path / "nope.gpkg"), "--text", "x", "-o", str(tmp_path / "b.gpkg"),
                      check=False)
    assert missing.returncode == 2 and "no such result" in missing.stderr
    for proc in (no_output, examples, into_input, missing):
        assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(OptionError, match="--text"):
        rsgeo.query_archive(results, [], tmp_path / "c.gpkg")


def test_a_folder_skips_geopackages_that_are_not_results(archive: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copyfile(archive["dir"] / "L7_ETMs.gpkg", folder / "L7_ETMs.gpkg")
    shutil.copyfile(archive["merged"], folder / "merged.gpkg")  # a merged file: no embeddings of its own
    out = rsgeo.query_archive([folder], [TEXTS[0]], tmp_path / "skip.gpkg", top_k=3)
    assert set(pyogrio.read_dataframe(out, layer="query_coral_reef")["scene"]) == {"L7_ETMs"}


def test_the_worker_answers_over_the_archive_as_the_api_does(archive: dict[str, Path], tmp_path: Path) -> None:
    """The QGIS panel's archive search: one encoder load, then each query over the folder as query_archive."""
    from rsgeo.worker import Worker

    worker = Worker()
    opened = worker.handle({"id": 1, "op": "open_archive", "paths": [str(archive["dir"])]})
    assert opened["ok"], opened
    assert opened["result"]["results"] == len(SCENES) and opened["result"]["held"] is True
    assert opened["result"]["tiles"] == sum(len(pyogrio.read_dataframe(archive["dir"] / f"{Path(s).stem}.gpkg",
                                                                        layer="tiles")) for s in SCENES)
    out = tmp_path / "panel.gpkg"
    for rid in (2, 3):  # asked twice: the answer file is replaced, not refused
        reply = worker.handle({"id": rid, "op": "archive_query", "paths": [str(archive["dir"])],
                               "text": ["coral reef"], "top_k": 4, "output": str(out)})
        assert reply["ok"], reply
    assert reply["result"]["layers"] == ["query_coral_reef"] and reply["result"]["count"] == 4
    want = tmp_path / "api.gpkg"
    rsgeo.query_archive([archive["dir"]], ["coral reef"], want, top_k=4)
    got, ref = (pyogrio.read_dataframe(p, layer="query_coral_reef") for p in (out, want))
    assert list(got["scene"]) == list(ref["scene"]) and list(got["tile_id"]) == list(ref["tile_id"])
    np.testing.assert_allclose(got["similarity"], ref["similarity"], atol=1e-6, rtol=0)
    bad = worker.handle({"id": 4, "op": "archive_query", "paths": [str(archive["dir"])], "text": ["x"],
                         "top_k": 0, "output": str(out)})
    assert not bad["ok"] and "top_k" in bad["error"]


def test_an_open_archive_answers_as_the_streamed_path_and_sees_new_results(archive: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    """OpenArchive (every result held in memory) = query_archive (streamed), before and after the folder changes."""
    from rsgeo.archive_open import OpenArchive

    folder = tmp_path / "results"
    shutil.copytree(archive["dir"], folder)
    opened = OpenArchive([folder])

    def same(k: int) -> None:
        got, want = tmp_path / "open.gpkg", tmp_path / "streamed.gpkg"
        opened.refresh()
        opened.query(list(TEXTS), got, top_k=k, overwrite=True)
        rsgeo.query_archive([folder], TEXTS, want, top_k=k, overwrite=True)
        for layer in ("query_coral_reef", "query_pine_forest"):
            a, b = (pyogrio.read_dataframe(p, layer=layer) for p in (got, want))
            assert list(a["scene"]) == list(b["scene"]) and list(a["tile_id"]) == list(b["tile_id"])
            np.testing.assert_allclose(a["similarity"], b["similarity"], atol=1e-6, rtol=0)
        assert list(pyogrio.read_dataframe(got, layer="rsgeo_scenes")["scene"]) == \
            list(pyogrio.read_dataframe(want, layer="rsgeo_scenes")["scene"])

    same(9)
    assert len(opened.members) == len(SCENES)
    shutil.copy(folder / "RGB.byte.gpkg", folder / "RGB.byte_again.gpkg")  # a result added
    same(9)
    assert len(opened.members) == len(SCENES) + 1
    (folder / "OSBS_029.gpkg").unlink()  # a result removed
    same(5)
    assert sorted(m.name for m in opened.members) == ["L7_ETMs", "RGB.byte", "RGB.byte_again"]
    with pytest.raises(OptionError, match="one of the archive's results"):
        opened.query(["x"], folder / "RGB.byte.gpkg", top_k=1, overwrite=True)
    opened.close()


def test_the_worker_streams_an_archive_too_large_to_hold(archive: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import rsgeo.worker
    from rsgeo.worker import Worker

    monkeypatch.setattr(rsgeo.worker, "HELD_ARCHIVE_TILES", 0)
    worker = Worker()
    opened = worker.handle({"id": 1, "op": "open_archive", "paths": [str(archive["dir"])]})
    assert opened["ok"] and opened["result"]["held"] is False
    out = tmp_path / "streamed.gpkg"
    reply = worker.handle({"id": 2, "op": "archive_query", "paths": [str(archive["dir"])], "text": ["coral reef"],
                           "top_k": 4, "output": str(out)})
    assert reply["ok"], reply
    want = tmp_path / "api.gpkg"
    rsgeo.query_archive([archive["dir"]], ["coral reef"], want, top_k=4)
    a, b = (pyogrio.read_dataframe(p, layer="query_coral_reef") for p in (out, want))
    assert list(a["tile_id"]) == list(b["tile_id"]) and list(a["scene"]) == list(b["scene"])


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("rows", [1, 4095, 4096, 9000])
def test_block_by_block_similarities_are_those_of_the_widened_chunk_bit_for_bit(dtype: type, rows: int) -> None:
    """The archive scan's arithmetic is the per-scene answer's: equal values, not merely close ones."""
    from rsgeo.scoring import cosine_similarities, cosine_similarity

    rng = np.random.default_rng(rows)
    emb = rng.standard_normal((rows, 64)).astype(dtype)
    queries = rng.standard_normal((3, 64)).astype(np.float32)
    got = cosine_similarities(emb, queries)
    want = np.stack([cosine_similarity(emb.astype(np.float32), q) for q in queries])
    assert got.dtype == np.float32 and got.shape == (3, rows)
    np.testing.assert_array_equal(got, want)


def test_the_archive_scan_reads_the_embeddings_the_joined_reader_reads(archive: dict[str, Path]) -> None:
    """``iter_stored`` (no join to the tiles layer) yields the rows, order and values of ``iter_chunks``."""
    from rsgeo.metadata import embeddings_record
    from rsgeo.resultcheck import open_checked
    from rsgeo.store import GpkgEmbeddings

    path = sorted(archive["dir"].glob("*.gpkg"))[0]
    with open_checked(path) as (db, meta):
        record = embeddings_record(meta)
        store = GpkgEmbeddings(path, dim=record.dim, dtype=record.dtype, db=db)
        joined = list(store.iter_chunks(7, raw=True))
        alone = list(store.iter_stored(7))
    assert len(joined) == len(alone) > 1
    for (ids, _, emb), (ids2, emb2) in zip(joined, alone):
        np.testing.assert_array_equal(ids, ids2)
        np.testing.assert_array_equal(emb, emb2)
