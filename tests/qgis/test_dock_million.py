"""The search panel on a result of 10^6 tiles: answers as a raster, the main thread never stalls long.

The result is synthetic (``benchmarks/synthetic_result.py``: a real GeoPackage of
10^6 tiles with random unit 512-d embeddings, written by bulk SQLite inserts, once
per session). The panel opens it and answers two new texts while a 10 ms QTimer
ticks on the main thread; the largest gap between ticks is the longest the main
thread was blocked (printed, and recorded in docs/benchmarks.md; timings are not
asserted). What is asserted: no tile is copied into QGIS (no tile layer, no
vector layer of that size), the answer is a raster layer of the grid whose
values are the listed tiles' scores, and the top-k list is filled best first; land
cover comes as a paletted class raster of the same grid.

``RSGEO_DOCK_TILES`` changes the number of tiles (default 1,000,000).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from qgis.core import QgsPointXY, QgsProject, QgsRasterBandStats, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QEventLoop, Qt, QTimer
from qgis_helpers import REPO, pid_alive, render

TILES = int(os.environ.get("RSGEO_DOCK_TILES", "1000000"))
DIM = 512
TOP_K = 10
TICK_MS = 10


class StallMeter:
    """A QTimer ticking every ``TICK_MS`` on the main thread; the gaps between ticks are the stalls."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.gaps: list[float] = []

    def start(self) -> None:
        self.gaps = []
        self.last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def stop(self) -> dict[str, float]:
        self._tick()
        self.timer.stop()
        gaps = sorted(self.gaps)
        return {"max_ms": round(1e3 * gaps[-1], 1), "p99_ms": round(1e3 * gaps[int(0.99 * (len(gaps) - 1))], 1),
                "median_ms": round(1e3 * gaps[len(gaps) // 2], 1), "ticks": len(gaps)}


def spin_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Run Qt's event loop (no sleeping outside it) until ``condition()`` or ``timeout`` seconds."""
    loop = QEventLoop()
    check = QTimer()
    check.setInterval(5)
    check.timeout.connect(lambda: loop.quit() if condition() else None)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    check.start()
    deadline.start(int(timeout * 1000))
    if not condition():
        loop.exec()
    check.stop()
    deadline.stop()
    return condition()


@pytest.fixture(scope="session")
def million(tmp_path_factory: pytest.TempPathFactory, rsgeo_python: str) -> Path:
    """The synthetic result, built once per session by the rsgeo environment."""
    out = tmp_path_factory.mktemp("million") / f"synthetic-{TILES}.gpkg"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([rsgeo_python, str(REPO / "benchmarks" / "synthetic_result.py"), str(out),
                    "--tiles", str(TILES), "--dim", str(DIM)], check=True, env=env)
    return out


def test_dock_answers_a_million_tiles_as_a_raster(plugin, external, project, million: Path, qgis_iface,
                                                  tmp_path: Path) -> None:
    dock = plugin.ensure_dock()
    answers: list[dict] = []
    errors: list[str] = []
    dock.answered.connect(answers.append)
    dock.failed.connect(errors.append)
    dock.top_k.setValue(TOP_K)
    meter = StallMeter()
    figures: dict[str, object] = {"tiles": TILES, "dim": DIM}

    # Open: the panel must not copy the tiles; the worker reads 10^6 embeddings meanwhile.
    meter.start()
    t0 = time.perf_counter()
    assert dock.open_result(str(million))
    figures["open_call_ms"] = round(1e3 * (time.perf_counter() - t0), 1)
    assert spin_until(lambda: dock.query.isEnabled() or bool(errors), 600), dock.status.text()
    figures["ready_s"] = round(time.perf_counter() - t0, 1)
    figures["open"] = meter.stop()
    assert not errors, errors
    assert dock.search is None and dock.map is not None  # no tile layer is built
    assert not [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)]

    for n, text in enumerate(("solar farm", "flooded fields"), start=1):
        meter.start()
        t0 = time.perf_counter()
        dock.ask(text)
        assert spin_until(lambda: len(answers) >= n or bool(errors), 120), dock.status.text()
        figures[f"query_{n}"] = {**meter.stop(), "answer_s": round(time.perf_counter() - t0, 2),
                                 "worker_s": answers[-1].get("worker_seconds", {})}
        assert not errors, errors
        if n == 1:
            first_id, first_source = dock.map.layer.id(), dock.map.layer.source()
            position = QgsProject.instance().layerTreeRoot().children().index(
                QgsProject.instance().layerTreeRoot().findLayer(first_id))

    with capsys_off():
        print(f"\ndock at {TILES} tiles: " + json.dumps(figures))

    answer = answers[-1]
    layer = dock.map.layer
    assert isinstance(layer, QgsRasterLayer) and layer.isValid() and layer.providerType() == "gdal"
    assert QgsProject.instance().mapLayer(layer.id()) is layer
    # The second answer took the first one's place in the layer tree; the first left the project.
    assert QgsProject.instance().mapLayer(first_id) is None and layer.source() != first_source
    root = QgsProject.instance().layerTreeRoot()
    assert root.children().index(root.findLayer(layer.id())) == position and root.findLayer(layer.id()).isVisible()
    # Land cover of the whole result: a class raster, styled from its palette, no tile copied either.
    classified: list[dict] = []
    dock.classified.connect(classified.append)
    dock.class_sets.setCurrentIndex(dock.class_sets.findData("custom:"))
    dock.classes.setText("water, forest, urban area")
    meter.start()
    t0 = time.perf_counter()
    dock.classify()
    assert spin_until(lambda: bool(classified) or bool(errors), 300), dock.status.text()
    figures["landcover"] = {**meter.stop(), "answer_s": round(time.perf_counter() - t0, 2),
                            "worker_s": classified[-1].get("worker_seconds", {})}
    assert not errors, errors
    lc = dock.landcover_map.layer
    assert isinstance(lc, QgsRasterLayer) and lc.renderer().type() == "paletted"
    assert [c.label for c in lc.renderer().classes()] == ["water", "forest", "urban area"]
    assert (lc.width(), lc.height()) == (math.ceil(TILES ** 0.5),) * 2  # one cell per chip
    assert sum(classified[-1]["counts"]) == classified[-1]["tiles"] == TILES
    assert not [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)]
    lc_source = lc.source()
    print(f"\ndock land cover at {TILES} tiles: " + json.dumps(figures["landcover"]), file=sys.__stdout__)

    assert "flooded fields" in layer.name() and layer.renderer().type() == "singlebandpseudocolor"
    side = math.ceil(TILES ** 0.5)
    assert (layer.width(), layer.height()) == (side, side)  # one cell per chip of the square grid
    assert answer["tiles"] == TILES and answer["raster"] == layer.source()
    # The top-k list: filled, best first, agreeing with the raster's cells at the tiles' centres.
    assert dock.results.count() == TOP_K
    listed = [dock.results.item(i).data(Qt.ItemDataRole.UserRole) for i in range(TOP_K)]
    scores = [s for _t, s in answer["top"]]
    assert listed == [t for t, _s in answer["top"]] and scores == sorted(scores, reverse=True)
    provider = layer.dataProvider()
    for tile, score in answer["top"]:
        value, ok = provider.sample(QgsPointXY(*dock.centres[tile]), 1)
        assert ok and abs(value - score) < 1e-6, (tile, value, score)
    stats = provider.bandStatistics(1, QgsRasterBandStats.Max | QgsRasterBandStats.Min)
    assert abs(stats.maximumValue - scores[0]) < 1e-6  # nothing on the map beats the best listed tile
    assert provider.sourceHasNoDataValue(1)  # chips without embeddings would show nothing, not 0
    picture = render([layer], tmp_path / "million.png")
    assert picture["painted"] > 0 and picture["colours"] >= 3, picture
    # Zoom to a listed tile: the canvas centres on it.
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    dock.results.itemClicked.emit(dock.results.item(0))
    assert canvas.extent().center().distance(QgsPointXY(*dock.centres[listed[0]])) < dock.grid.chip_size / 2

    pid = dock.client.pid
    sources = [first_source, layer.source(), lc_source]
    dock.close_result()
    assert not pid_alive(pid) or spin_until(lambda: not pid_alive(pid), 10)
    assert not any(Path(s).exists() for s in sources)  # the answers went with the panel's folder


class capsys_off:
    """Print past pytest's capture (the figures belong in the log of every run)."""

    def __enter__(self) -> None:
        self._stdout = sys.stdout
        sys.stdout = sys.__stdout__

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stdout = self._stdout
