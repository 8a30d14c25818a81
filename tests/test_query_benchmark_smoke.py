"""``benchmarks/query_speed.py`` runs from a checkout and reports every figure (issue 4).

A smoke run on 3,000 tiles with one repetition: it checks the command and its
JSON, never the timings (a shared CI machine's milliseconds mean nothing; the
figures in docs/benchmarks.md come from the full 1,000,000-tile run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_query_benchmark_writes_every_figure(tmp_path: Path, dtype: str) -> None:
    out = tmp_path / "query.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "query_speed.py"), "--tiles", "3000", "--repeats", "1",
         "--dtype", dtype, "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "new text query, by text tower" in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["tiles"] == 3000 and figures["dtype"] == dtype
    for name in ("text_query_ms_median", "repeated_text_query_ms_median", "example_query_ms_median",
                 "similarity_topk_only_ms_median", "encode_then_torch_scan_ms_median", "encode_then_numpy_scan_ms_median",
                 "clip_text_tower_77_tokens_ms", "clip_text_tower_real_length_ms",
                 "xlmr_text_tower_77_tokens_ms", "xlmr_text_tower_real_length_ms"):
        assert figures[name] > 0, name
    assert figures["scan_chosen"] in ("numpy", "torch")
    assert figures["rss_growth_mb"] >= 0
