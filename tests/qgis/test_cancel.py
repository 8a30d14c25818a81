"""Cancel really stops the work: the rsgeo process is gone and nothing is left behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException
from qgis_helpers import RecordingFeedback, pid_alive

# A real open_clip architecture (random weights) on small chips: slow enough to cancel mid-run.
SLOW = {"MODEL": "arch:ViT-S-32", "CHIP_SIZE": "32", "BATCH_SIZE": 4, "DEVICE": 1}


def _cancel_at_first_progress(feedback: RecordingFeedback) -> dict:
    seen: dict = {}

    def on_progress(value: float) -> None:
        if value > 0 and not feedback.isCanceled():
            seen["at"] = time.monotonic()
            seen["progress"] = value
            feedback.cancel()  # what the dialog's Cancel button does

    feedback.progressChanged.connect(on_progress)
    return seen


def test_cancel_kills_rsgeo_and_removes_its_files(plugin, external, project, data_dir: Path, tmp_path: Path) -> None:
    import processing

    out = tmp_path / "cancelled.gpkg"
    feedback = RecordingFeedback()
    seen = _cancel_at_first_progress(feedback)
    with pytest.raises(QgsProcessingException):
        processing.run("rsgeo:embed", {"INPUT": str(data_dir / "RGB.byte.tif"), "OUTPUT": str(out), **SLOW},
                       feedback=feedback)
    stopped_after = time.monotonic() - seen["at"]
    print(f"stopped {stopped_after:.2f} s after the cancel")
    assert 0 < seen["progress"] < 50  # it was really running, far from done
    pid = feedback.rsgeo_pid()
    assert pid is not None
    assert not pid_alive(pid), f"rsgeo process {pid} still running after cancel"
    assert stopped_after < 10, stopped_after
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no journal, no temporary file
    assert any(e.startswith("Cancelled: rsgeo process") for e in feedback.errors), feedback.errors


def test_resumable_embed_keeps_progress_on_cancel_and_resumes(plugin, external, project, data_dir: Path,
                                                               tmp_path: Path) -> None:
    import processing

    out = tmp_path / "resumable.gpkg"
    params = {"INPUT": str(data_dir / "RGB.byte.tif"), "OUTPUT": str(out), "RESUME": True,
              **SLOW, "MODEL": "test:hash", "CHIP_SIZE": "32", "BATCH_SIZE": 8}
    feedback = RecordingFeedback()
    seen = _cancel_at_first_progress(feedback)
    with pytest.raises(QgsProcessingException):
        processing.run("rsgeo:embed", params, feedback=feedback)
    assert seen
    assert not out.exists()
    partial = [p.name for p in tmp_path.iterdir()]
    assert "resumable.gpkg.rsgeo-partial" in partial, partial  # the journal is kept for --resume
    result = processing.run("rsgeo:embed", params, feedback=RecordingFeedback())
    assert Path(result["OUTPUT"]).is_file() and result["LAYER_NAMES"] == "tiles"
    assert not (tmp_path / "resumable.gpkg.rsgeo-partial").exists()
