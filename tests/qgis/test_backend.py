"""Finding rsgeo: settings, RSGEO_PYTHON, PATH; and the message when there is none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException
from qgis_helpers import RecordingFeedback, set_plugin_settings


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No RSGEO_PYTHON, an empty PATH and HOME: nothing to auto-detect."""
    monkeypatch.delenv("RSGEO_PYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "bin").mkdir()
    return tmp_path


def test_clear_message_when_rsgeo_is_nowhere(plugin, nowhere: Path, data_dir: Path) -> None:
    import processing
    from rsgeo_qgis import settings
    from rsgeo_qgis.backend import BackendError, find_backend

    with set_plugin_settings(backend="auto", python=""):
        with pytest.raises(BackendError) as exc:
            find_backend(settings.load())
        message = str(exc.value)
        assert "QGIS's Python" in message and "cannot import" in message
        assert "pip install rsgeo" in message and "RSGEO_PYTHON" in message and "Python interpreter" in message
        with pytest.raises(QgsProcessingException, match="pip install rsgeo"):
            processing.run("rsgeo:classify", {"INPUT": str(data_dir / "RGB.byte.tif"), "CLASSES": "a,b"},
                           feedback=RecordingFeedback())


def test_configured_python_without_rsgeo_is_reported(plugin, nowhere: Path) -> None:
    from rsgeo_qgis import settings
    from rsgeo_qgis.backend import BackendError, find_backend

    with set_plugin_settings(backend="external", python="/usr/bin/python3"):
        with pytest.raises(BackendError, match=r"/usr/bin/python3 cannot import rsgeo"):
            find_backend(settings.load())


def test_rsgeo_found_on_path(plugin, nowhere: Path, rsgeo_python: str) -> None:
    """An `rsgeo` console script on PATH leads to its interpreter (via its shebang)."""
    from rsgeo_qgis import settings
    from rsgeo_qgis.backend import find_backend

    script = nowhere / "bin" / "rsgeo"
    script.write_text(f"#!{rsgeo_python}\nimport sys\nfrom rsgeo.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    with set_plugin_settings(backend="auto", python=""):
        backend = find_backend(settings.load(), environ={**os.environ})
    assert backend.kind == "external" and backend.python == rsgeo_python
    assert "PATH" in backend.found_by


def test_rsgeo_python_env_var(plugin, nowhere: Path, rsgeo_python: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsgeo_qgis import settings
    from rsgeo_qgis.backend import find_backend

    monkeypatch.setenv("RSGEO_PYTHON", rsgeo_python)
    with set_plugin_settings(backend="auto", python=""):
        backend = find_backend(settings.load())
    assert backend.kind == "external" and backend.python == rsgeo_python and "RSGEO_PYTHON" in backend.found_by


def test_settings_dialog_saves_and_checks(plugin, rsgeo_python: str) -> None:
    from rsgeo_qgis import settings
    from rsgeo_qgis.settings_dialog import SettingsDialog

    with set_plugin_settings(backend="auto", python="", model="rs-m-clip", device="auto", top_k=20):
        dialog = SettingsDialog()
        dialog.backend.setCurrentIndex(dialog.backend.findData("external"))
        dialog.python.setFilePath(rsgeo_python)
        dialog.top_k.setValue(7)
        dialog.check()
        assert dialog.report.text().startswith("Using rsgeo") and rsgeo_python in dialog.report.text()
        dialog.accept()
        saved = settings.load()
        assert (saved.backend, saved.python, saved.top_k) == ("external", rsgeo_python, 7)
