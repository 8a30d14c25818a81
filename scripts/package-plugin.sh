#!/usr/bin/env bash
# Build the installable QGIS plugin zip: dist/rsgeo_qgis-<version>.zip
#
#   scripts/package-plugin.sh [DIST_DIR]
#
# Install it in QGIS with Plugins ▸ Manage and Install Plugins ▸ Install from ZIP.
# The zip holds one folder, rsgeo_qgis/, as QGIS expects; caches and editor
# files are left out. The version comes from qgis_plugin/rsgeo_qgis/metadata.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${1:-$ROOT/dist}"
mkdir -p "$DIST"
PYTHON="$(command -v python3 || command -v python)"

"$PYTHON" - "$ROOT/qgis_plugin/rsgeo_qgis" "$DIST" <<'PY'
import configparser
import os
import sys
import zipfile
from pathlib import Path

src, dist = Path(sys.argv[1]), Path(sys.argv[2])
meta = configparser.ConfigParser()
meta.read(src / "metadata.txt", encoding="utf-8")
general = meta["general"]
required = ["name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "tracker", "repository"]
missing = [k for k in required if not general.get(k, "").strip()]
if missing:
    sys.exit(f"package-plugin: metadata.txt lacks {', '.join(missing)}")
icon = src / general["icon"]
if not icon.is_file():
    sys.exit(f"package-plugin: metadata.txt names icon {icon.name}, which does not exist")
if not (src / "LICENSE").is_file():
    sys.exit("package-plugin: the plugin folder needs a LICENSE file")

skip_dirs = {"__pycache__", ".mypy_cache", ".pytest_cache"}
skip_suffixes = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
# followlinks: definitions/ is a link to rsgeo/definitions (one copy of the shared schema);
# the zip holds the files themselves.
files = []
for folder, dirs, names in os.walk(src, followlinks=True):
    dirs[:] = sorted(d for d in dirs if d not in skip_dirs and not d.startswith("."))
    for name in names:
        p = Path(folder) / name
        if p.is_file() and p.suffix not in skip_suffixes and not name.startswith("."):
            files.append(p)
files.sort()
out = dist / f"{src.name}-{general['version']}.zip"
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
    for p in files:
        info = zipfile.ZipInfo(f"{src.name}/{p.relative_to(src).as_posix()}", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, p.read_bytes())
print(out)
PY
