"""The installable zip, and the plugin's algorithms from qgis_process (no GUI, no pytest-qgis)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest
from qgis_helpers import REPO

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # /usr/bin/qgis_process is broken by /etc/default/qgis on Debian


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run([str(REPO / "scripts" / "package-plugin.sh"), str(dist)], check=True,
                         capture_output=True, text=True).stdout.strip()
    return Path(out)


def test_zip_is_one_plugin_folder_without_caches(plugin_zip: Path) -> None:
    assert plugin_zip.name == "rsgeo_qgis-0.1.0.zip"
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert all(n.startswith("rsgeo_qgis/") for n in names)
    for required in ("__init__.py", "metadata.txt", "icon.svg", "LICENSE", "provider.py", "dock.py"):
        assert f"rsgeo_qgis/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_installed_zip_runs_from_qgis_process(plugin_zip: Path, rsgeo_python: str, embedded: Path,
                                              tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    env = {**os.environ, "QGIS_PLUGINPATH": str(plugins), "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile"),
           "RSGEO_PYTHON": rsgeo_python, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONPATH", None)
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", "rsgeo_qgis"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    listed = subprocess.run([QGIS_PROCESS, "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "rsgeo:textquery" in listed.stdout and "rsgeo:querybyexample" in listed.stdout
    out = tmp_path / "from_qgis_process.gpkg"
    run = subprocess.run(
        [QGIS_PROCESS, "--json", "run", "rsgeo:textquery", "--", f"RESULT={embedded}", "TEXT=white sand",
         "TOP_K=5", f"OUTPUT={out}"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]
    assert results["LAYER_NAMES"].startswith("query_white_sand")
    with sqlite3.connect(out) as db:
        assert db.execute(f'SELECT COUNT(*) FROM "{results["LAYER_NAMES"]}"').fetchone()[0] == 5
