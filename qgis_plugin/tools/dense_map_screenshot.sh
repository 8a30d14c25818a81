#!/usr/bin/env bash
# Make docs/img/qgis-dense-map.png: the QGIS desktop under Xvfb after "Classify land cover" with
# "Dense sub-chip maps" ticked on rasterio's RGB.byte.tif, the dense class raster over the scene.
#
#   RSGEO_PYTHON=/path/to/python-with-rsgeo qgis_plugin/tools/dense_map_screenshot.sh [OUT.png]
#
# Needs Debian's QGIS, xvfb and imagemagick (apt-get install qgis python3-qgis xvfb xauth imagemagick).
# The model is open_clip's ViT-B-32 architecture with *random weights* (arch:ViT-B-32): no weights
# can be downloaded where this was made. The picture shows the plugin's dense output (cells of a
# seventh of a chip, blended across overlapping chips, styled from its .qml), not land cover.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/docs/img/qgis-dense-map.png}"
DATA="${RSGEO_SHARED_DATA:-$ROOT/../shared/data}"
RSGEO_PYTHON="${RSGEO_PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rsgeo-dense-shot.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

. "$ROOT/qgis_plugin/tools/shot_common.sh"
shot_profile "$WORK"
export RSGEO_SHOT_SCENE="$DATA/RGB.byte.tif" RSGEO_SHOT_OUTPUT="$WORK/RGB.byte.gpkg" RSGEO_SHOT_LOG="$WORK/run.log"
shot_run "$WORK" "$ROOT/qgis_plugin/tools/dense_map_startup.py" "$OUT"
