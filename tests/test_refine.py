"""Refinement, probes and label-and-refine search on stored embeddings (docs/refine.md).

Synthetic embeddings (tests/synthetic.py, seeded) where the truth is known;
label readers on real vector files over real scenes, in another CRS than the
scene; the real ``rsgeo`` command end to end on small results made with the
``test:hash`` encoder; bad inputs as one line and exit 2.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, shared
from tests.synthetic import synthetic

from rsgeo.feedback import SearchSession
from rsgeo.neighbours import knn_graph
from rsgeo.probe import cross_validated_accuracy, fit_probe
from rsgeo.results import EmbeddingIndex
from rsgeo.transductive import RefineParams, refine_scores

ABSENT = np.arange(6, 10)


# -- synthetic: refinement ------------------------------------------------------------------


def _text_majority_is_right(data: object) -> bool:
    """Whether, in every present class, most chips' zero-shot answer is that class."""
    zs = data.probs.argmax(1)  # type: ignore[attr-defined]
    truth = data.truth  # type: ignore[attr-defined]
    return all(np.bincount(zs[truth == k], minlength=10).argmax() == k for k in data.present)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 3])
def test_refinement_beats_zero_shot_and_empties_absent_classes(seed: int) -> None:
    data = synthetic(n=3000, d=128, seed=seed, offset=2.0, noise=1.0)
    zero_shot = data.zero_shot_accuracy()
    assert zero_shot < 0.85 and _text_majority_is_right(data)  # room to be wrong; the text right on the whole
    refined = refine_scores(data.x, data.probs, RefineParams())
    pred = refined.scores.argmax(1)
    accuracy = float(np.mean(pred == data.truth))
    assert accuracy >= zero_shot + 0.1
    assert accuracy >= 0.95
    assert np.mean(np.isin(pred, ABSENT)) <= 0.02  # absent classes (nearly) empty
    assert refined.class_weights[ABSENT].sum() <= 0.02
    assert np.allclose(refined.scores.sum(1), 1, atol=1e-4)
    assert refined.removed and set(refined.removed) <= set(ABSENT.tolist())  # only absent classes removed
    assert np.all(refined.scores[:, refined.removed] == 0)
    meta = refined.meta([f"c{i}" for i in range(10)])
    assert meta["removed_classes"] == [f"c{i}" for i in refined.removed] and meta["method"] == "rs-transclip"


def test_refinement_helps_on_average_when_the_text_is_often_wrong() -> None:
    """Prototypes far off (zero-shot about 60 %): still a clear gain in accuracy.

    Absent classes are not emptied here: where most of a class's chips are
    called an absent class by the text, refinement hands it the whole cluster
    (docs/refine.md, "when it hurts"); so only the accuracy is asserted.
    """
    zs, ref = [], []
    for seed in range(3):
        data = synthetic(n=1500, d=128, seed=seed, offset=2.5, noise=1.2)
        pred = refine_scores(data.x, data.probs, RefineParams()).scores.argmax(1)
        zs.append(data.zero_shot_accuracy())
        ref.append(float(np.mean(pred == data.truth)))
    assert np.mean(ref) >= np.mean(zs) + 0.15
    assert all(r >= z for r, z in zip(ref, zs))  # never worse than zero-shot here


def test_without_text_weight_or_graph_it_still_runs_and_text_weight_matters() -> None:
    data = synthetic(n=1500, d=64, seed=4)
    a = refine_scores(data.x, data.probs, RefineParams(knn=0))
    b = refine_scores(data.x, data.probs, RefineParams(text_weight=0.0))
    assert a.knn_method == "none" and a.scores.shape == data.probs.shape
    assert not np.allclose(a.scores, b.scores)


@pytest.mark.slow
def test_ivf_graph_finds_most_exact_neighbours_in_n_k_memory() -> None:
    # Local structure as in a scene (neighbouring chips alike): tight groups of 12 around centres that
    # vary in a 32-dimensional subspace of 256 dimensions.
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.normal(size=(256, 32)))[0]
    centres = rng.normal(size=(500, 32)) @ basis.T + 2.0 * rng.normal(size=256) / 16
    x = np.repeat(centres, 12, axis=0) + 0.02 * rng.normal(size=(6000, 256))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    exact = knn_graph(x, 5, method="exact")
    approx = knn_graph(x, 5, method="ivf")
    assert approx.neighbours.shape == (6000, 5) and approx.method == "ivf"
    assert not np.any(approx.neighbours == np.arange(6000)[:, None])  # never itself
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx.neighbours, exact.neighbours)])
    assert recall >= 0.9
    sims = np.einsum("id,ikd->ik", x[:100], x[approx.neighbours[:100]])
    assert np.allclose(sims, approx.similarity[:100], atol=1e-5)


# -- synthetic: probes and search -----------------------------------------------------------


def test_probe_with_five_labels_per_class_reaches_90_percent() -> None:
    data = synthetic(n=3000, d=512, k=10, present=10, seed=6, offset=3.0, noise=1.5)
    idx = np.concatenate([np.nonzero(data.truth == k)[0][:5] for k in range(10)])
    rest = np.setdiff1d(np.arange(len(data.truth)), idx)
    probe = fit_probe(data.x[idx], data.truth[idx], data.prototypes, scale=data.scale)
    accuracy = float(np.mean(probe.predict(data.x[rest]) == data.truth[rest]))
    assert accuracy >= 0.9
    cv = cross_validated_accuracy(data.x[idx], data.truth[idx], data.prototypes, scale=data.scale)
    assert cv is not None and cv[1] == 5 and cv[0] >= 0.8


def test_two_labels_per_class_already_beat_zero_shot_and_no_labels_is_zero_shot() -> None:
    data = synthetic(n=3000, d=256, k=8, present=8, seed=7, offset=3.0, noise=1.5)
    zero_shot = data.zero_shot_accuracy()
    idx = np.concatenate([np.nonzero(data.truth == k)[0][:2] for k in range(8)])
    probe = fit_probe(data.x[idx], data.truth[idx], data.prototypes, scale=data.scale)
    assert float(np.mean(probe.predict(data.x) == data.truth)) > zero_shot + 0.05
    assert cross_validated_accuracy(data.x[:3], np.array([0, 1, 1]), data.prototypes, scale=data.scale) is None
    # Regularised toward the text classifier: with a huge pull the probe is zero-shot.
    stiff = fit_probe(data.x[idx], data.truth[idx], data.prototypes, scale=data.scale, reg=1e6)
    assert np.mean(stiff.predict(data.x) == data.probs.argmax(1)) > 0.99


def test_hard_negative_round_lifts_precision() -> None:
    data = synthetic(n=5000, d=128, k=4, present=4, seed=8, offset=2.5, noise=1.0)
    target = 0
    ids = np.arange(len(data.truth), dtype=np.int64) * 3 + 7  # tile ids need not be 0..N-1
    index = EmbeddingIndex(ids, data.x)
    vague = data.prototypes[0] + 0.9 * data.prototypes[1]  # a text between the target and another class
    session = SearchSession(index, vague / np.linalg.norm(vague), scale=data.scale)

    def precision(k: int = 200) -> float:
        top, _ = session.ranking(top_k=k)
        return float(np.mean(data.truth[(top - 7) // 3] == target))

    before = precision()
    assert before < 0.9  # the text alone ranks other tiles high
    session.refit()
    assert precision() == pytest.approx(before)  # no labels: the text ranking
    for _ in range(3):  # the analyst judges the top unlabelled tiles
        shown = session.candidates(100)
        truth = data.truth[(shown - 7) // 3] == target
        session.label(shown[truth].tolist(), True)
        session.label(shown[~truth].tolist(), False)
        session.refit()
    assert len(session.no) > 0 and len(session.yes) > 0
    assert precision() >= min(0.98, before + 0.1)
    assert session.seconds < 5  # (the benchmark times it; this only says it did not hang)


# -- real files: the label readers and the command line --------------------------------------


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("refine")
    landsat = work / "landsat.gpkg"
    run_cli("classify", str(shared("L7_ETMs.tif")), "-o", str(landsat), "--model", "test:hash", "--chip-size", "32",
            "--bands", "3,2,1", "--classes", "forest,water,urban area,cloud,desert", "-q")
    s2 = work / "s2.gpkg"
    run_cli("embed", str(shared("eolearn/s2_l1c_scene2_13band.tif")), "-o", str(s2), "--model", "test:hash",
            "--chip-size", "10", "--bands", "4,3,2", "-q")
    return {"landsat": landsat, "s2": s2, "work": work}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def test_polygon_labels_in_another_crs_map_to_the_chips_whose_centres_they_hold(results: dict[str, Path], tmp_path: Path) -> None:
    import geopandas as gpd

    from rsgeo import open_result
    from rsgeo.labels import read_labels

    polygons = gpd.read_file(shared("eolearn/TestEOPatch__vector_timeless__LULC.gpkg"))
    assert polygons.crs.to_epsg() == 32633
    path = tmp_path / "lulc_wgs84.gpkg"
    polygons.to_crs("EPSG:4326").to_file(path, layer="lulc")
    res = open_result(results["s2"])
    labels = read_labels(path, res.grid, field="LULC_NAME", stored=res.index.tile_ids)
    # The truth, computed independently in the scene's CRS: each chip centre in which polygon.
    tiles = gpd.read_file(results["s2"], layer="tiles")
    centres = gpd.GeoDataFrame({"tile_id": tiles.tile_id}, geometry=tiles.geometry.centroid, crs=tiles.crs)
    named = polygons[polygons.LULC_NAME.str.strip() != ""]  # a blank label is no label
    joined = gpd.sjoin(centres, named[["LULC_NAME", "geometry"]], predicate="within")
    expected = joined.groupby("tile_id")["LULC_NAME"].agg(lambda v: sorted(set(v)))
    expected = {int(t): v[0] for t, v in expected.items() if len(v) == 1}
    got = dict(zip(labels.tile_ids.tolist(), labels.values))
    common = set(expected) & set(got)
    assert len(common) >= 0.9 * len(expected) > 20
    assert all(got[t] == expected[t] for t in common)
    assert labels.source == "lulc_wgs84.gpkg:lulc"


def test_point_labels_in_web_mercator_and_tile_id_tables(results: dict[str, Path], tmp_path: Path) -> None:
    import geopandas as gpd
    import pandas as pd

    from rsgeo import open_result
    from rsgeo.labels import read_labels

    tiles = gpd.read_file(results["landsat"], layer="tiles").sort_values("tile_id")
    pick = tiles.iloc[[3, 17, 40, 41, 90]]
    points = gpd.GeoDataFrame({"what": ["a", "b", "a", "b", "a"]}, geometry=pick.geometry.centroid.values, crs=tiles.crs)
    points.to_crs("EPSG:3857").to_file(tmp_path / "pts.geojson")
    res = open_result(results["landsat"])
    labels = read_labels(tmp_path / "pts.geojson", res.grid, field="what", stored=res.index.tile_ids)
    assert labels.tile_ids.tolist() == sorted(pick.tile_id.tolist())
    assert dict(zip(labels.tile_ids.tolist(), labels.values)) == dict(zip(pick.tile_id.tolist(), points["what"]))
    pd.DataFrame({"tile_id": [5, 6, 99999], "what": ["x", "y", "x"]}).to_csv(tmp_path / "ids.csv", index=False)
    by_id = read_labels(tmp_path / "ids.csv", res.grid, field="what", stored=res.index.tile_ids)
    assert by_id.tile_ids.tolist() == [5, 6] and by_id.values == ("x", "y")  # 99999 is no chip: left out


@pytest.mark.slow
def test_cli_refine_classify_and_search_from_labels_end_to_end(results: dict[str, Path], tmp_path: Path) -> None:
    import geopandas as gpd

    from rsgeo import open_result

    out = _copy(results["landsat"], tmp_path / "r.gpkg")
    proc = run_cli("refine", str(out), "--layer", "landcover", "--knn", "4")
    assert "landcover_refined" in proc.stderr and "changed class" in proc.stderr
    res = open_result(out)
    meta = res.metadata["layers"]["landcover_refined"]
    assert meta["method"] == "rs-transclip" and meta["source_layer"] == "landcover"
    assert meta["refine"]["params"]["knn"] == 4 and meta["kind"] == "landcover"
    refined = gpd.read_file(out, layer="landcover_refined")
    base = gpd.read_file(out, layer="landcover")
    assert len(refined) == len(base) and list(refined.columns) == list(base.columns)
    assert np.allclose(refined[["forest", "water", "urban_area", "cloud", "desert"]].sum(axis=1), 1, atol=1e-4)

    # Labels: points over the scene, in EPSG:4326.
    tiles = gpd.read_file(out, layer="tiles").sort_values("tile_id")
    rng = np.random.default_rng(0)
    pick = tiles.iloc[rng.choice(len(tiles), 20, replace=False)]
    values = np.where(np.arange(20) % 2 == 0, "water", "urban area")
    ok = np.where(np.arange(20) % 3 == 0, "yes", "no")
    points = gpd.GeoDataFrame({"cls": values, "ok": ok}, geometry=pick.geometry.centroid.values, crs=tiles.crs)
    labels = tmp_path / "labels.gpkg"
    points.to_crs("EPSG:4326").to_file(labels, layer="pts")
    proc = run_cli("classify", str(out), "--labels", str(labels), "--label-field", "cls", "--save-labels", "cls_labels")
    assert "cross-validated accuracy" in proc.stderr and "on 20 labels (5-fold)" in proc.stderr
    meta = open_result(out).metadata["layers"]
    assert meta["landcover_probe"]["method"] == "linear-probe"
    assert 0 <= meta["landcover_probe"]["cv_accuracy"] <= 1 and meta["landcover_probe"]["cv_folds"] == 5
    assert meta["landcover_probe"]["labels"]["per_class"] == {"urban area": 10, "water": 10}
    saved = gpd.read_file(out, layer="cls_labels")
    assert sorted(saved.tile_id) == sorted(pick.tile_id) and meta["cls_labels"]["kind"] == "labels"

    run_cli("query", str(out), "--text", "a lake", "--labels", str(labels), "--label-field", "ok",
            "--save-labels", "ok_labels", "--layer", "q1")
    run_cli("query", str(out), "--text", "a lake", "--labels", str(out), "--label-layer", "ok_labels",
            "--label-field", "label", "--layer", "q2")  # the saved labels read back: the same ranking
    q1, q2 = gpd.read_file(out, layer="q1"), gpd.read_file(out, layer="q2")
    assert q1.tile_id.tolist() == q2.tile_id.tolist() and np.allclose(q1.similarity, q2.similarity)
    run_cli("query", str(out), "--text", "a lake")  # the text alone
    q0 = gpd.read_file(out, layer="query_a_lake")
    def ranks(frame: object) -> list[int]:
        return frame.sort_values("tile_id")["rank"].tolist()  # type: ignore[attr-defined]

    assert ranks(q0) != ranks(q1)  # the labels moved the ranking
    meta = open_result(out).metadata["layers"]["q1"]
    assert meta["labels"] == {"source": "labels.gpkg:pts", "yes": 7, "no": 13}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing field", "unknown label layer", "labels outside", "unknown layer", "not yes/no"])
def test_bad_inputs_are_one_line_and_exit_2(results: dict[str, Path], tmp_path: Path, case: str) -> None:
    import geopandas as gpd
    import shapely

    out = _copy(results["landsat"], tmp_path / "r.gpkg")
    tiles = gpd.read_file(out, layer="tiles")
    here = gpd.GeoDataFrame({"cls": ["water", "forest"]}, geometry=tiles.geometry.centroid.values[:2], crs=tiles.crs)
    far = gpd.GeoDataFrame({"cls": ["water", "forest"]}, geometry=[shapely.Point(10, 50), shapely.Point(11, 51)], crs="EPSG:4326")
    here.to_crs("EPSG:4326").to_file(tmp_path / "here.gpkg", layer="pts")
    far.to_file(tmp_path / "far.gpkg", layer="pts")
    before = _digest(out)
    args = {
        "missing field": ["classify", str(out), "--labels", str(tmp_path / "here.gpkg"), "--label-field", "nope"],
        "unknown label layer": ["classify", str(out), "--labels", str(tmp_path / "here.gpkg"), "--label-field", "cls", "--label-layer", "x"],
        "labels outside": ["classify", str(out), "--labels", str(tmp_path / "far.gpkg"), "--label-field", "cls"],
        "unknown layer": ["refine", str(out), "--layer", "nope"],
        "not yes/no": ["query", str(out), "--text", "x", "--labels", str(tmp_path / "here.gpkg"), "--label-field", "cls"],
    }[case]
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rsgeo: error: "), proc.stderr
    expected = {"missing field": "has no field 'nope' (--label-field)", "unknown label layer": "has no layer 'x' (--label-layer)",
                "labels outside": "lies on an encoded chip", "unknown layer": "no land-cover layer 'nope' (--layer)",
                "not yes/no": "is neither yes nor no"}[case]
    assert expected in lines[0]
    assert _digest(out) == before  # nothing half-written


def test_worker_search_refits_on_clicks_and_labels_round_trip(results: dict[str, Path], tmp_path: Path) -> None:
    import base64

    from rsgeo.worker import Worker

    out = _copy(results["landsat"], tmp_path / "w.gpkg")
    worker = Worker()

    def ids(b64: str) -> list[int]:
        return np.frombuffer(base64.b64decode(b64), "<i8").tolist()

    first = worker.handle({"id": 1, "op": "search", "path": str(out), "text": ["a lake"]})
    assert first["ok"], first
    ranking = ids(first["result"]["tile_id"])
    shown = ids(first["result"]["candidates"])
    assert shown == ranking[:20]  # nothing labelled yet: the candidates are the top of the ranking
    yes, no = shown[5:7], shown[:3]  # the analyst rejects the top three
    second = worker.handle({"id": 2, "op": "search", "path": str(out), "text": ["a lake"], "yes": yes, "no": no})
    assert second["ok"] and second["result"]["yes"] == 2 and second["result"]["no"] == 3
    reranked = ids(second["result"]["tile_id"])
    assert sorted(reranked) == sorted(ranking) and reranked != ranking
    assert not set(ids(second["result"]["candidates"])) & set(yes + no)  # only unlabelled tiles are shown
    assert reranked.index(no[0]) > ranking.index(no[0])  # a rejected tile goes down
    saved = worker.handle({"id": 3, "op": "save_labels", "path": str(out), "layer": "dock_labels", "yes": yes, "no": no})
    assert saved["ok"] and saved["result"]["count"] == 5, saved
    loaded = worker.handle({"id": 4, "op": "load_labels", "path": str(out), "labels": str(out), "layer": "dock_labels",
                            "field": "label"})
    assert loaded["ok"] and loaded["result"] == {"yes": sorted(yes), "no": sorted(no)}, loaded
    bad = worker.handle({"id": 5, "op": "load_labels", "path": str(out), "labels": str(out), "layer": "nope", "field": "label"})
    assert not bad["ok"] and "has no layer 'nope'" in bad["error"]
