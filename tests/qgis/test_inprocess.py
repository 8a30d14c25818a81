"""The in-process backend: rsgeo imported into QGIS's Python (here without torch: test encoder)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProject
from qgis_helpers import REPO, RecordingFeedback, set_plugin_settings, wait_until


@pytest.fixture
def rsgeo_in_qgis(plugin, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """rsgeo importable in QGIS's Python (from the checkout), torch still not; auto-detection picks it."""
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delenv("RSGEO_PYTHON", raising=False)
    importlib.invalidate_caches()
    with set_plugin_settings(backend="auto", python="", model="test:hash"):
        yield
    for name in [m for m in sys.modules if m == "rsgeo" or m.startswith("rsgeo.")]:
        del sys.modules[name]


def test_auto_picks_inprocess_and_streams_progress(rsgeo_in_qgis, project, data_dir: Path, tmp_path: Path) -> None:
    import processing
    from rsgeo_qgis import settings
    from rsgeo_qgis.backend import find_backend

    backend = find_backend(settings.load())
    assert backend.kind == "inprocess", backend
    feedback = RecordingFeedback()
    out = tmp_path / "inproc.gpkg"
    result = processing.runAndLoadResults("rsgeo:classify", {
        "INPUT": str(data_dir / "L7_ETMs.tif"), "OUTPUT": str(out), "CLASSES": "sea, forest, city",
        "BANDS": "3,2,1", "CHIP_SIZE": "32", "BATCH_SIZE": 16,
    }, feedback=feedback)
    assert result["LAYER_NAMES"] == "landcover"
    assert feedback.rsgeo_pid() is None  # no subprocess
    # the same command line the CLI would parse, run in this process (not a subprocess)
    assert any(c.startswith("rsgeo classify ") and c.endswith("(in QGIS's Python)") for c in feedback.commands), \
        feedback.commands
    assert len([p for p in feedback.progress_values if 0 < p < 100]) >= 2  # progress during the run
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name() == "landcover (inproc)"]
    assert len(layers) == 1 and layers[0].renderer().type() == "categorizedSymbol"


def test_inprocess_cancel_uses_the_cancel_callback(rsgeo_in_qgis, project, data_dir: Path, tmp_path: Path) -> None:
    import processing

    feedback = RecordingFeedback()
    feedback.progressChanged.connect(lambda v: v > 0 and not feedback.isCanceled() and feedback.cancel())
    with pytest.raises(QgsProcessingException):
        processing.run("rsgeo:embed", {
            "INPUT": str(data_dir / "RGB.byte.tif"), "OUTPUT": str(tmp_path / "c.gpkg"), "CHIP_SIZE": "16",
            "BATCH_SIZE": 8,
        }, feedback=feedback)
    assert max(feedback.progress_values) < 50
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert any(e.startswith("Cancelled") for e in feedback.errors), feedback.errors


def test_dock_in_process_worker_thread(rsgeo_in_qgis, plugin, project, embedded: Path) -> None:
    """QGIS's Python has no torch: the in-process worker answers without it."""
    dock = plugin.ensure_dock()
    answers: list[dict] = []
    errors: list[str] = []
    dock.answered.connect(answers.append)
    dock.failed.connect(errors.append)
    try:
        assert dock.open_result(str(embedded))
        assert wait_until(lambda: dock.client is not None or bool(errors), 30), dock.status.text()  # found off the main thread
        assert dock.client.pid is None and dock.client.is_running  # a thread, not a process
        assert wait_until(lambda: dock.query.isEnabled() or bool(errors), 60), dock.status.text()
        dock.ask("sandy beach")
        assert wait_until(lambda: bool(answers) or bool(errors), 60)
        assert not errors, errors
        assert dock.results.count() == dock.top_k.value()
        assert "torch" not in sys.modules
        thread = dock.client._thread
    finally:
        dock.close_result()  # before the fixture takes rsgeo off sys.path, also when an assertion failed
    assert thread is not None and thread.isFinished()
