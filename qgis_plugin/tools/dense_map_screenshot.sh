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

PROFILE="$WORK/profiles/profiles/default"
mkdir -p "$PROFILE/python/plugins" "$PROFILE/QGIS"
cp -r "$ROOT/qgis_plugin/rsgeo_qgis" "$PROFILE/python/plugins/"
rm -f "$PROFILE/python/plugins/rsgeo_qgis/definitions"
cp -r "$ROOT/rsgeo/definitions" "$PROFILE/python/plugins/rsgeo_qgis/definitions"
cat > "$PROFILE/QGIS/QGIS3.ini" <<INI
[PythonPlugins]
rsgeo_qgis=true

[qgis]
checkVersion=false
showTips322=false
showTips=false
newProjectDefault=false

[rsgeo]
python=$RSGEO_PYTHON
backend=external
INI

export RSGEO_SHOT_SCENE="$DATA/RGB.byte.tif" RSGEO_SHOT_OUTPUT="$WORK/RGB.byte.gpkg" RSGEO_SHOT_OUT="$OUT"
export RSGEO_SHOT_LOG="$WORK/run.log"
export XDG_RUNTIME_DIR="$WORK/runtime"
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset QT_QPA_PLATFORM PYTHONPATH
xvfb-run -a -s "-screen 0 1600x1000x24" \
    qgis --nologo --noversioncheck --profiles-path "$WORK/profiles" \
    --code "$ROOT/qgis_plugin/tools/dense_map_startup.py" >"$WORK/qgis.log" 2>&1 || true
cat "$RSGEO_SHOT_LOG" 2>/dev/null || true
if [ ! -s "$OUT" ]; then
    echo "screenshot: no image written; QGIS log:" >&2
    tail -40 "$WORK/qgis.log" >&2
    exit 1
fi
echo "$OUT"
