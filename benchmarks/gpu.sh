#!/usr/bin/env bash
# The GPU benchmark (issue 20) on a machine with an NVIDIA GPU and no network:
#   bash benchmarks/gpu.sh OUT_DIR                          # everything (benchmarks/gpu.py)
#   RSGEO_GPU_BENCH=reader bash benchmarks/gpu.sh OUT_DIR   # what bounds end to end (benchmarks/gpu_reader.py)
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
if [ "${RSGEO_GPU_BENCH:-all}" = reader ]; then  # what bounds end to end: decode, reader without a model, end to end
    SCENE=/tmp/rsgeo-gpu/scene-24576.tif
    python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from scenes import make_scene; \
print(make_scene(Path('$SCENE'), 24576, 24576))"
    python3 benchmarks/gpu_reader.py --scene "$SCENE" --json "$OUT/gpu_reader.json" "${@:2}" 2>&1 | tee "$OUT/gpu_reader.log"
else
    python3 benchmarks/gpu.py --json "$OUT/gpu.json" "${@:2}" 2>&1 | tee "$OUT/gpu.log"
fi
