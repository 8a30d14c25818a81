"""``benchmarks/map_speed.py`` runs from a checkout and reports every figure (issue 13).

A smoke run (2,000 tiles, one repetition, a few large chips): it checks the command and its JSON,
never the timings (the figures in docs/benchmarks.md come from the full 10^6-tile run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared


@pytest.mark.slow
def test_map_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "maps.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "map_speed.py"), "--tiles", "2000", "--repeats", "1",
         "--scene", str(shared("RGB.byte.tif")), "--chip-size", "300", "--overlap", "0", "--overhead-repeats", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    over, million = figures["rasters_overhead"], figures["million"]
    assert over["chips"] > 0 and over["rasters_kb"] > 0 and over["gpkg_kb"] > over["rasters_kb"]
    for name in ("classify_s", "classify_with_rasters_s", "raster_writing_s", "size_pct_of_gpkg"):
        assert over[name] > 0, name
    assert million["tiles"] == 2000
    for name in ("new_text_to_raster_ms_median", "text_encode_ms", "scan_ms", "rasterise_plus_cog_write_ms", "raster_mb"):
        assert million[name] > 0, name
    assert {"cpu", "flags", "load_average", "load_average_at_start"} <= set(figures["machine"])
