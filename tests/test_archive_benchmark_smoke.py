"""``benchmarks/archive.py`` runs from a checkout and reports every figure (issue 21).

A smoke run on 3 x 2,000 tiles with two repetitions: it checks the command, its
phases (each a process of its own) and its JSON, never the timings or the recall
(an index over 6,000 tiles means nothing; the figures in docs/benchmarks.md come
from the 10^6 and 10^7 runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("faiss")


@pytest.mark.slow
def test_archive_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "archive.json"
    work = tmp_path / "archive"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "archive.py"), "--scenes", "3", "--tiles-per-scene", "2000",
         "--repeats", "2", "--exact-repeats", "1", "--tmp", str(work), "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["tiles"] == 6000 and figures["scenes"] == 3 and figures["dtype"] == "float16"
    for name in ("archive_build_s", "archive_mb", "index_build_s", "index_train_s", "index_file_mb",
                 "index_build_peak_rss_mb", "index_load_s", "query_peak_rss_mb", "exact_peak_rss_mb",
                 "held_archive_open_s", "held_archive_peak_rss_mb"):
        assert figures[name] >= 0, name
    for name in ("text_query_ms", "text_encode_ms", "index_search_rescore_ms", "query_archive_with_index_ms",
                 "exact_query_archive_ms", "exact_search_only_ms", "held_archive_text_query_ms",
                 "held_archive_scan_only_ms"):
        assert figures[name]["median"] > 0 and figures[name]["p90"] >= figures[name]["median"], name
    for name in ("recall_at_50_texts", "recall_at_50_near_tiles"):
        assert 0 <= figures[name]["min"] <= figures[name]["mean"] <= 1, name
    assert figures["index_vectors"] == 6000 and figures["exact_tiles"] == 6000
    assert set(figures["targets"]) == {"index_text_query_le_200ms", "recall_at_50_ge_0.95", "query_peak_rss_le_4GB",
                                       "exact_text_query_le_1s", "held_exact_text_query_le_1s", "at_1e7_tiles"}
    assert figures["machine"]["cpu_count"] >= 1 and len(figures["machine"]["load_average_before"]) == 3
    assert "text_query_ms" in proc.stdout

    # a second run reuses the archive (same shape) and, asked to, the index
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "archive.py"), "--scenes", "2", "--tiles-per-scene", "2000",
         "--repeats", "1", "--exact-repeats", "1", "--tmp", str(work), "--json", str(out), "--reuse-index"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing 2 of the 3 results" in again.stderr
    assert json.loads(out.read_text())["index_vectors"] == 4000
