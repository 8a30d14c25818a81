"""A killed embed run resumes to exactly the uninterrupted result (issue 4, point 2)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyogrio
import pytest

from tests.conftest import journal_rows, run_cli, shared


def embeddings(path: Path) -> list[tuple[int, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT tile_id, embedding FROM rsgeo_embeddings ORDER BY tile_id").fetchall()



def nodata_ids(journal: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:  # closed: the rerun writes it
        return {r[0] for r in db.execute("SELECT tile_id FROM nodata")}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_embed_resumes_to_identical_output(tmp_path: Path, tiny_clip_dir: Path, sig: int) -> None:
    scene = shared("RGB.byte.tif")
    args = ["--model", f"local-dir:{tiny_clip_dir}", "--chip-size", "32", "--batch-size", "16", "--workers", "1"]
    reference = tmp_path / "reference.gpkg"
    run_cli("embed", str(scene), "-o", str(reference), "-q", *args)

    out = tmp_path / "resumed.gpkg"
    journal = out.with_name(out.name + ".rsgeo-partial")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rsgeo", "embed", str(scene), "-o", str(out), "-q", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while journal_rows(journal) < 64 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists(), "an interrupted run must not leave an output file"
    stored = journal_rows(journal)
    assert stored >= 64
    nodata = nodata_ids(journal)  # RGB.byte.tif's black corners: read once, never again
    assert nodata and nodata.isdisjoint(t for t, _ in embeddings(reference)), "a tile with pixels was listed as nodata"

    resumed = run_cli("embed", str(scene), "-o", str(out), "--resume", "-v", *args)
    match = re.search(r"encoded (\d+) chips in this run \((\d+) were already in the journal; (\d+) nodata chips "
                      r"found by the earlier run were not read again\)", resumed.stderr)
    assert match, resumed.stderr
    encoded_now, already, skipped = (int(g) for g in match.groups())
    total = len(embeddings(reference))
    assert already == stored and skipped == len(nodata)
    assert encoded_now == total - stored, "chips already in the journal were encoded again"
    assert not journal.exists()

    assert embeddings(out) == embeddings(reference)
    a = pyogrio.read_dataframe(out, layer="tiles").sort_values("tile_id").reset_index(drop=True)
    b = pyogrio.read_dataframe(reference, layer="tiles").sort_values("tile_id").reset_index(drop=True)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()


def test_resume_with_other_options_is_refused(tmp_path: Path, tiny_clip_dir: Path) -> None:
    scene = shared("L7_ETMs.tif")
    out = tmp_path / "out.gpkg"
    journal = out.with_name(out.name + ".rsgeo-partial")
    # A journal left by a run with a different chip size.
    from rsgeo.journal import Journal

    Journal(journal, {"grid": {"size_px": 1}}, dim=64, dtype="float32", resume=False).close()
    proc = run_cli("embed", str(scene), "-o", str(out), "--bands", "3,2,1", "--resume",
                   "--model", f"local-dir:{tiny_clip_dir}", check=False)
    assert proc.returncode == 2
    assert "cannot resume" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
