"""Fixtures for the QGIS plugin tests: a real headless QGIS (pytest-qgis), the plugin, data.

Run them with ``scripts/test-qgis.sh``: it installs Debian's QGIS, makes a
venv on QGIS's Python (without torch and without rsgeo) and points
``RSGEO_PYTHON`` at a Python that has rsgeo (the project's venv), which the
plugin then drives as an external environment. Without QGIS these tests are
not collected.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import qgis.core  # noqa: F401
except ImportError:  # the main test run (no QGIS): collect nothing here
    collect_ignore_glob = ["*.py"]
else:
    from qgis_helpers import (  # noqa: E402 - local helpers, need QGIS
        PLUGIN_DIR,
        REPO,
        set_plugin_settings,
    )

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        here = Path(__file__).parent
        for item in items:
            if here in Path(str(item.fspath)).parents:
                item.add_marker(pytest.mark.qgis)

    @pytest.fixture(scope="session")
    def data_dir() -> Path:
        """The shared real scenes (``../shared/data``; ``RSGEO_SHARED_DATA`` overrides)."""
        path = Path(os.environ.get("RSGEO_SHARED_DATA", REPO.parent / "shared" / "data"))
        if not (path / "RGB.byte.tif").is_file():
            pytest.fail(f"test scenes not found in {path}; set RSGEO_SHARED_DATA")
        return path

    @pytest.fixture(scope="session")
    def rsgeo_python() -> str:
        """A Python with rsgeo installed: the external environment the plugin drives."""
        python = os.environ.get("RSGEO_PYTHON", "")
        if not python:
            pytest.fail("set RSGEO_PYTHON to a Python that has rsgeo installed (scripts/test-qgis.sh does)")
        probe = subprocess.run([python, "-c", "import rsgeo"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.fail(f"RSGEO_PYTHON={python} cannot import rsgeo: {probe.stderr.strip()[-300:]}")
        return python

    @pytest.fixture(scope="session")
    def _plugin_started(qgis_iface, qgis_processing):  # noqa: ANN001, ANN202 - pytest-qgis fixtures
        """The plugin loaded the way QGIS loads it (qgis.utils: metadata, classFactory, initGui)."""
        import qgis.utils

        if str(PLUGIN_DIR) not in sys.path:
            sys.path.insert(0, str(PLUGIN_DIR))
        qgis.utils.plugin_paths.insert(0, str(PLUGIN_DIR))
        qgis.utils.updateAvailablePlugins()
        assert qgis.utils.loadPlugin("rsgeo_qgis")
        assert qgis.utils.startPlugin("rsgeo_qgis")
        yield
        qgis.utils.unloadPlugin("rsgeo_qgis")

    @pytest.fixture
    def plugin(_plugin_started):  # noqa: ANN001, ANN201
        """The running plugin instance."""
        import qgis.utils

        return qgis.utils.plugins["rsgeo_qgis"]

    @pytest.fixture
    def external(rsgeo_python: str, plugin) -> Iterator[str]:  # noqa: ANN001
        """Plugin settings: run rsgeo in the external environment ``RSGEO_PYTHON``."""
        with set_plugin_settings(backend="external", python=rsgeo_python, model="test:hash"):
            yield rsgeo_python

    @pytest.fixture
    def project(qgis_new_project):  # noqa: ANN001, ANN201
        """A clean project, cleared again afterwards (layers alive at exit crash QGIS)."""
        from qgis.core import QgsProject

        yield qgis_new_project
        QgsProject.instance().clear()

    @pytest.fixture(scope="session")
    def embedded_template(tmp_path_factory: pytest.TempPathFactory, rsgeo_python: str, data_dir: Path) -> Path:
        """RGB.byte.tif embedded once with the test encoder by the rsgeo CLI (not by the plugin)."""
        out = tmp_path_factory.mktemp("embedded") / "rgb.gpkg"
        subprocess.run(
            [rsgeo_python, "-m", "rsgeo", "embed", str(data_dir / "RGB.byte.tif"), "-o", str(out),
             "--model", "test:hash", "--chip-size", "64", "-q"],
            check=True, env=_clean_env(),
        )
        return out

    @pytest.fixture
    def embedded(embedded_template: Path, tmp_path: Path) -> Path:
        """A fresh copy of the embedded result, for tests that add layers to it."""
        return Path(shutil.copy(embedded_template, tmp_path / "rgb.gpkg"))

    def _clean_env() -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        return env

    @pytest.fixture(scope="session", autouse=True)
    def _no_layers_alive_at_exit(qgis_app):  # noqa: ANN001, ANN202
        """QGIS crashes on exit (139) if layers outlive exitQgis(): drop every reference first."""
        yield
        import gc

        from qgis.core import QgsProject

        QgsProject.instance().clear()
        # A failed test's traceback (kept for post-mortem debugging) holds its layers.
        sys.last_traceback = sys.last_value = sys.last_type = None
        if hasattr(sys, "last_exc"):
            sys.last_exc = None
        gc.collect()
