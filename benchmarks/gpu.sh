#!/usr/bin/env bash
# The GPU benchmark (issue 20) on a machine with an NVIDIA GPU and no network:
#   bash benchmarks/gpu.sh OUT_DIR
# Installs the Python packages that machine lacks from the wheels in .whl*/ (fetched
# beforehand with pip download, see docs/benchmarks.md), then runs benchmarks/gpu.py
# (its figures: OUT_DIR/gpu.json, its log: OUT_DIR/gpu.log). Real scenes come from .gpu/
# (copies of ../shared/data/RGB.byte.tif and OSBS_029.tif).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?give the output folder}"
mkdir -p "$OUT"
SITE=/tmp/rsgeo-site
for w in .whl*/; do
    [ -d "$w" ] || continue
    ls "$w"/*.whl >/dev/null 2>&1 || continue
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$w"/*.whl
done
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export RSGEO_BENCH_TEXTURE="$PWD/.gpu/OSBS_029.tif" PYTHONUNBUFFERED=1
python3 -c "import rasterio, pyogrio, geopandas, open_clip, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 benchmarks/gpu.py --json "$OUT/gpu.json" "${@:2}" 2>&1 | tee "$OUT/gpu.log"
