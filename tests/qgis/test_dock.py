"""The search panel: queries, top-k list, example picking, land cover, worker life cycle."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsPointXY, QgsProject
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis_helpers import open_in_dock, pid_alive, render, wait_until


def _open(plugin, embedded: Path):  # noqa: ANN001, ANN202
    return open_in_dock(plugin.ensure_dock(), lambda dock: dock.open_result(str(embedded)))


def _wait_answer(answers: list, errors: list, n: int) -> dict:
    assert wait_until(lambda: len(answers) >= n or bool(errors), 60)
    assert not errors, errors
    return answers[-1]


def test_dock_answers_a_query(plugin, external, project, embedded: Path, qgis_iface, tmp_path: Path) -> None:
    dock, answers, errors = _open(plugin, embedded)
    pid = dock.client.pid
    assert pid is not None and pid_alive(pid)
    dock.top_k.setValue(10)
    dock.ask("turquoise shallow water")
    first = _wait_answer(answers, errors, 1)
    layer = dock.search.layer
    assert QgsProject.instance().mapLayer(layer.id()) is layer
    assert "turquoise shallow water" in layer.name()
    assert layer.renderer().type() == "graduatedSymbol"
    sims = {int(f["tile_id"]): f["similarity"] for f in layer.getFeatures()}
    ranks = {int(f["tile_id"]): f["rank"] for f in layer.getFeatures()}
    assert sims and all(v is not None for v in sims.values())  # every tile scored
    assert sorted(ranks.values()) == list(range(1, len(ranks) + 1))
    # The top-k list is best first and agrees with the layer.
    assert dock.results.count() == 10
    listed = [dock.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(10)]
    assert [ranks[t] for t in listed] == list(range(1, 11))
    assert sims[listed[0]] == max(sims.values())
    stats = render([layer], tmp_path / "dock.png")
    assert stats["painted"] > 0 and stats["colours"] >= 3, stats
    # A second query reuses the warm worker (same process) and is fast.
    dock.ask("white clouds over the sea")
    second = _wait_answer(answers, errors, 2)
    assert dock.client.pid == pid
    assert second["seconds"] < 2.0, (first, second)
    assert {int(f["tile_id"]): f["similarity"] for f in layer.getFeatures()} != sims
    # "Only these on the map" filters the layer to the top k.
    dock.only_top.setChecked(True)
    assert layer.featureCount() == 10
    dock.only_top.setChecked(False)
    assert layer.featureCount() == len(sims)
    dock.close_result()
    assert wait_until(lambda: not pid_alive(pid), 10), "the worker process outlived the panel"


def test_dock_zoom_and_pick_example_on_map(plugin, external, project, embedded: Path, qgis_iface) -> None:
    dock, answers, errors = _open(plugin, embedded)
    layer = dock.search.layer
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    dock.ask("island")
    _wait_answer(answers, errors, 1)
    # Click-to-zoom on the best tile of the list.
    best = dock.results.item(0).data(Qt.ItemDataRole.UserRole)
    dock.results.itemClicked.emit(dock.results.item(0))
    feature = next(f for f in layer.getFeatures() if int(f["tile_id"]) == best)
    centre = feature.geometry().centroid().asPoint()
    extent = canvas.extent()
    tile = feature.geometry().boundingBox()
    assert extent.center().distance(centre) < tile.width() / 2  # centred on the tile ...
    assert min(extent.width(), extent.height()) <= 5.5 * max(tile.width(), tile.height())  # ... and zoomed in
    # Pick an example with the map tool: a real mouse release on the canvas.
    target = sorted(layer.getFeatures(), key=lambda f: f["rank"])[-1]  # the least similar tile
    point = target.geometry().centroid().asPoint()
    canvas.setExtent(layer.extent())
    canvas.refresh()
    dock.query.clear()
    dock.pick.setChecked(True)
    assert canvas.mapTool() is dock.pick_tool
    pixel = canvas.getCoordinateTransform().transform(QgsPointXY(point))
    event = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, QPoint(round(pixel.x()), round(pixel.y())),
                             Qt.MouseButton.LeftButton)
    dock.pick_tool.canvasReleaseEvent(event)
    answer = _wait_answer(answers, errors, 2)
    assert dock.like == [int(target["tile_id"])]
    assert answer["query"].startswith("like")
    sims = {int(f["tile_id"]): f["similarity"] for f in layer.getFeatures()}
    # The example is its own best match (its embedding is the query).
    assert sims[int(target["tile_id"])] >= max(sims.values()) - 1e-6 and abs(answer["top"][0][1] - 1.0) < 1e-3
    dock.pick.setChecked(False)
    dock.close_result()


def test_dock_switches_class_sets(plugin, external, project, embedded: Path) -> None:
    import processing

    # A stored land-cover layer in the file shows up as a choice ...
    processing.run("rsgeo:classify", {"RESULT": str(embedded), "CLASSES": "sea, land", "LAYER": "landcover"})
    dock, _answers, errors = _open(plugin, embedded)
    choices = [dock.class_sets.itemData(i) for i in range(dock.class_sets.count())]
    assert "layer:landcover" in choices and "custom:" in choices
    results: list[dict] = []
    dock.classified.connect(results.append)
    dock.class_sets.setCurrentIndex(choices.index("layer:landcover"))
    dock.classify()
    stored = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("landcover")]
    assert len(stored) == 1 and stored[0].renderer().type() == "categorizedSymbol"
    # ... and typed classes are answered by the worker from the stored embeddings.
    dock.class_sets.setCurrentIndex(choices.index("custom:"))
    dock.classify(["deep water", "shallow water", "sand", "cloud"])
    assert wait_until(lambda: len(results) >= 2 or bool(errors), 60)
    assert not errors, errors
    layer = dock.landcover.layer
    assert layer.renderer().type() == "categorizedSymbol"
    assert [c.value() for c in layer.renderer().categories()] == ["deep water", "shallow water", "sand", "cloud"]
    assert {f["top_class"] for f in layer.getFeatures()} <= {"deep water", "shallow water", "sand", "cloud"}
    assert all(0.25 <= f["top_score"] <= 1.0 for f in layer.getFeatures())  # a softmax top of 4 classes
    # ... and so are rsgeo's built-in class sets (listed by the worker).
    assert wait_until(lambda: dock.class_sets.findData("set:esa-worldcover") >= 0, 30)
    dock.class_sets.setCurrentIndex(dock.class_sets.findData("set:esa-worldcover"))
    dock.classify()
    assert wait_until(lambda: len(results) >= 3 or bool(errors), 60)
    assert not errors, errors
    assert len(results[-1]["classes"]) == 11 and layer is dock.landcover.layer  # the same layer, updated
    assert [c.value() for c in layer.renderer().categories()] == results[-1]["classes"]
    assert "esa-worldcover" in layer.name()
    dock.close_result()


def test_dock_learns_from_yes_no_clicks_and_saves_the_labels(plugin, external, project, embedded: Path) -> None:
    """The click-refit loop: yes/no labels refit a probe, every tile is re-ranked, the best unlabelled
    tiles are offered to judge next (a "no" there is the hard-negative round), labels round-trip a layer."""
    import sqlite3

    dock, answers, errors = _open(plugin, embedded)
    done: list[dict] = []
    dock.labels_done.connect(done.append)
    dock.top_k.setValue(10)
    dock.learn.setChecked(True)
    dock.ask("island")  # no labels yet: the text alone
    first = _wait_answer(answers, errors, 1)
    assert "candidates" not in first
    before = [int(t) for t, _ in dock.ranked]
    top, bottom = before[0], before[-1]
    dock.add_example(bottom, True)  # the least similar tile is what I want ...
    assert _wait_answer(answers, errors, 2)["yes"] == 1
    dock.add_example(top, False)  # ... and the best one is not
    second = _wait_answer(answers, errors, 3)
    assert (second["yes"], second["no"]) == (1, 1) and second["refit_seconds"] >= 0.0
    after = [int(t) for t, _ in dock.ranked]
    assert sorted(after) == sorted(before)  # every tile re-ranked
    assert after.index(bottom) < before.index(bottom) and after.index(top) > before.index(top)
    # the tiles to judge next: the best-ranked ones not labelled yet, in ranking order
    unlabelled = [t for t in after if t not in (top, bottom)]
    assert second["candidates"] == unlabelled[:10]
    listed = [dock.results.item(i).text() for i in range(dock.results.count())]
    assert all(t.endswith("✓") == (f"tile {bottom} " in t) for t in listed)  # the labels are marked in the list
    # the hard-negative round: reject the best candidate, and it drops
    rejected = second["candidates"][0]
    dock.add_example(rejected, False)
    third = _wait_answer(answers, errors, 4)
    assert third["no"] == 2 and rejected not in third["candidates"]
    third_ranking = [int(t) for t, _ in dock.ranked]
    assert third_ranking.index(rejected) > after.index(rejected)
    # save the labels as a layer of the result, forget them, load them back
    dock.save_labels("labels")
    assert wait_until(lambda: bool(done) or bool(errors), 60) and not errors, errors
    assert done[-1]["count"] == 3 and done[-1]["layer"] == "labels"
    with sqlite3.connect(embedded) as db:
        rows = dict(db.execute("SELECT tile_id, label FROM labels").fetchall())
    assert rows == {bottom: "yes", top: "no", rejected: "no"}
    dock.clear_examples()  # the query text stays: it is answered alone again
    assert dock.like == [] and dock.unlike == []
    assert "candidates" not in _wait_answer(answers, errors, 5)
    dock.load_labels(str(embedded), "label", "labels")
    assert wait_until(lambda: len(done) >= 2 or bool(errors), 60) and not errors, errors
    assert dock.like == [bottom] and sorted(dock.unlike) == sorted([top, rejected])
    reloaded = _wait_answer(answers, errors, 6)
    assert reloaded["no"] == 2 and [int(t) for t, _ in dock.ranked] == third_ranking  # the same labels, the same answer
    dock.close_result()
