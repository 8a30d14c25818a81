"""``benchmarks/throughput.py --quick`` runs and writes every figure (issue 6).

A smoke run: tiny scenes, a smaller open_clip architecture, one repetition.
It checks that the benchmark command works from a checkout and that its JSON
holds every figure and target, never the figures' values (timings on a shared
CI machine mean nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("torchgeo", reason="benchmarks need: pip install -c constraints.txt -r benchmarks/requirements.txt")

TIMING = {"chips", "wall_s", "cpu_s", "chips_per_s", "chips_per_cpu_s"}


@pytest.mark.slow
def test_quick_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick", "--arch", "ViT-S-32",
         "--out", str(out), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "target (issue 6)" in proc.stdout  # the printed table
    result = json.loads(out.read_text())
    assert result["quick"] is True and result["plan"]["arch"] == "ViT-S-32"
    assert {"cpu", "cores", "memory_gib", "versions", "load_before", "load_after"} <= set(result["machine"])
    f = result["figures"]
    for name in (
        "model_only", "rsgeo_e2e", "naive_e2e", "torchgeo_e2e", "readme_e2e", "gdal_decode", "rsgeo_read",
        "rsgeo_read_channels_first", "naive_read", "torchgeo_read", "torchgeo_read_workers",
    ):
        assert TIMING <= set(f[name]), name
        assert f[name]["chips"] > 0, name
    # Every pipeline did the whole job on the same chips.
    assert f["rsgeo_e2e"]["chips"] == f["naive_e2e"]["chips"] == f["torchgeo_e2e"]["chips"] == 8
    assert f["rsgeo_read"]["chips"] == f["naive_read"]["chips"] == f["torchgeo_read"]["chips"] == 64
    assert set(f["precision"]) == {"fp32", "bf16", "fp16"}
    fp32 = f["precision"]["fp32"]
    assert fp32["runs"] and fp32["max_score_deviation"] == 0.0 and fp32["model_speedup"] == 1.0
    for entry in f["precision"].values():
        assert entry["runs"] is False and entry["error"] or {"model_speedup", "e2e_speedup", "max_score_deviation"} <= set(entry)
    assert set(f["rss"]) == {"test:hash", "tiny open_clip"}
    for rss in f["rss"].values():
        assert rss["small"]["maxrss_mb"] > 0 and rss["large"]["maxrss_mb"] > 0 and rss["ratio"] > 0
    targets = {t["target"]: t for t in result["targets"]}
    assert len(targets) == 9
    assert all(isinstance(t["met"], bool) and t["op"] in (">=", "<=") for t in targets.values())
    assert result["notes"] and result["total_s"] > 0
