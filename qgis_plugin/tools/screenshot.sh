#!/usr/bin/env bash
# Make docs/img/qgis-dock.png: QGIS desktop under Xvfb with the rsgeo search panel open and a
# styled similarity layer over a real scene.
#
#   RSGEO_PYTHON=/path/to/python-with-rsgeo qgis_plugin/tools/screenshot.sh [OUT.png]
#
# Needs Debian's QGIS, xvfb and imagemagick (apt-get install qgis python3-qgis xvfb xauth imagemagick).
# No pretrained weights can be downloaded where this was made, so the scene is embedded with the
# deterministic test encoder (colour statistics): the picture shows the workflow, not model quality.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/docs/img/qgis-dock.png}"
DATA="${RSGEO_SHARED_DATA:-$ROOT/../shared/data}"
RSGEO_PYTHON="${RSGEO_PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rsgeo-shot.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A result to open: the scene embedded once.
env -u PYTHONPATH "$RSGEO_PYTHON" -m rsgeo embed "$DATA/RGB.byte.tif" -o "$WORK/RGB.byte.gpkg" \
    --model test:hash --chip-size 32 -q

# A fresh QGIS profile with the plugin installed and enabled.
. "$ROOT/qgis_plugin/tools/shot_common.sh"
shot_profile "$WORK" "top_k=12"
export RSGEO_SHOT_SCENE="$DATA/RGB.byte.tif" RSGEO_SHOT_RESULT="$WORK/RGB.byte.gpkg"
shot_run "$WORK" "$ROOT/qgis_plugin/tools/screenshot_startup.py" "$OUT"
