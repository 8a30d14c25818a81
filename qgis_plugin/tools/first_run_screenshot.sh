#!/usr/bin/env bash
# Make docs/img/qgis-first-run.png: the QGIS desktop under Xvfb after a first "Classify land cover"
# run with the default chip size on a real Landsat scene, the algorithm's dialog open beside it.
#
#   RSGEO_PYTHON=/path/to/python-with-rsgeo qgis_plugin/tools/first_run_screenshot.sh [OUT.png]
#
# Needs Debian's QGIS, xvfb and imagemagick (apt-get install qgis python3-qgis xvfb xauth imagemagick).
# No pretrained weights can be downloaded where this was made: the run uses the registered model
# georsclip-vit-b-32 (its record has a training scale, 300 m) with a *randomly initialised*
# checkpoint of its architecture, set as the offline weights in rsgeo settings. The picture shows
# the workflow (default chip from the scene's pixel size, WorldCover colours), not model quality.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/docs/img/qgis-first-run.png}"
DATA="${RSGEO_SHARED_DATA:-$ROOT/../shared/data}"
RSGEO_PYTHON="${RSGEO_PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rsgeo-first-run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Offline weights: a random state dict of GeoRSCLIP's architecture, in its published file format.
env -u PYTHONPATH "$RSGEO_PYTHON" - "$WORK/RS5M_ViT-B-32.pt" <<'PY'
import sys, torch, open_clip
torch.manual_seed(0)
torch.save(open_clip.create_model("ViT-B-32-quickgelu").state_dict(), sys.argv[1])
PY

. "$ROOT/qgis_plugin/tools/shot_common.sh"
shot_profile "$WORK" "model=georsclip-vit-b-32
checkpoint=$WORK/RS5M_ViT-B-32.pt"
export RSGEO_SHOT_SCENE="$DATA/L7_ETMs.tif" RSGEO_SHOT_OUTPUT="$WORK/L7_ETMs.gpkg" RSGEO_SHOT_LOG="$WORK/run.log"
shot_run "$WORK" "$ROOT/qgis_plugin/tools/first_run_startup.py" "$OUT"
