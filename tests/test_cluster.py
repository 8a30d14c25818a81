"""Scale-out (issue 8): blocks, the Dask backend, `rsgeo batch`, a worker killed mid-run."""

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
from typing import Any

import pyogrio
import pytest
from affine import Affine

from rsgeo.batch import expand_inputs, scene_names
from rsgeo.cluster import Block, RowsGrid, parse_cluster, plan_blocks
from rsgeo.errors import OptionError, SceneError
from rsgeo.grid import ChipGrid, ChipSpec
from tests.conftest import journal_rows, run_cli, shared

SCENES = ["RGB.byte.tif", "L7_ETMs.tif", "OSBS_029.tif"]
# 48-px chips resized to the model's 224: 255 + 64 + 81 chips, enough blocks for two workers.
READ = ["--chip-size", "48", "--bands", "1,2,3"]
CLASSES = "forest,water,city"
TEXT = "harbour"


# -- pure parts -------------------------------------------------------------------


def test_parse_cluster() -> None:
    assert parse_cluster("local:3").workers == 3 and parse_cluster("local:3").is_local
    assert parse_cluster("local").workers >= 1
    assert parse_cluster("head:8786").address == "tcp://head:8786"
    assert parse_cluster("tls://10.0.0.1:8786").address == "tls://10.0.0.1:8786"
    for bad in ("local:0", "local:x", "head", "yes"):
        with pytest.raises(OptionError, match="--cluster"):
            parse_cluster(bad)


@pytest.mark.parametrize("width,height,size,stride", [(791, 718, 48, 48), (100, 1000, 32, 20), (50, 50, 64, 64)])
@pytest.mark.parametrize("workers,block_chips,batch", [(1, None, None), (2, None, 32), (7, None, 7), (2, 1, None), (2, 100, None)])
def test_blocks_cover_the_grid_once_and_read_the_same_windows(
    width: int, height: int, size: int, stride: int, workers: int, block_chips: int | None, batch: int | None
) -> None:
    grid = ChipGrid(width, height, Affine(2.0, 0.0, 500.0, 0.0, -2.0, 900.0), ChipSpec(size, stride))
    blocks = plan_blocks(grid, workers=workers, block_chips=block_chips, batch_size=batch)
    ids = [t for b in blocks for t in range(b.start, b.stop)]
    assert ids == list(range(len(grid)))
    if block_chips is None:  # whole batches: only the scene's last block may end in a short one
        assert all(len(b) % (batch or 256) == 0 for b in blocks[:-1])
    for block in blocks:
        sub = RowsGrid.of(grid, block)
        outside = set(block.outside_ids())
        assert len(sub) == len(block) + len(outside)
        assert outside.isdisjoint(range(block.start, block.stop))
        for local in sub.chips():
            whole = grid.chip(local.tile_id + block.offset)
            assert (local.window, local.transform, local.row + block.row0, local.col) == (
                whole.window, whole.transform, whole.row, whole.col)


def test_automatic_blocks_are_whole_batches_within_bounds() -> None:
    from rsgeo.cluster.blocks import MAX_BLOCK_CHIPS

    big = ChipGrid(224 * 300, 224 * 300, Affine.identity(), ChipSpec(224, 224))  # 90,000 chips
    assert {len(b) for b in plan_blocks(big, workers=2)[:-1]} == {MAX_BLOCK_CHIPS}
    s2 = ChipGrid(10980, 10980, Affine.identity(), ChipSpec(224, 224))  # a Sentinel-2 tile: 2,401 chips
    assert [len(b) for b in plan_blocks(s2, workers=8, batch_size=32)][:2] == [96, 96]  # 2401 / 32 = 75 -> 96
    assert len(plan_blocks(s2, workers=8)[0]) == 256  # each worker picks its batch: whole GPU batches


def test_rows_grid_refuses_a_block_of_another_grid() -> None:
    grid = ChipGrid(100, 100, Affine.identity(), ChipSpec(10, 10))
    with pytest.raises(ValueError):
        RowsGrid.of(grid, Block(50, 110, 10))


def test_expand_inputs_files_globs_folders(tmp_path: Path) -> None:
    for name in ("a.tif", "b.TIFF", "c.vrt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.tif").write_bytes(b"")
    found = expand_inputs([str(tmp_path), str(tmp_path / "sub" / "*.tif"), str(tmp_path / "a.tif")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.tif", "b.TIFF", "c.vrt", "sub/a.tif"]
    assert scene_names(found) == [f"{tmp_path.name}-a", "b", "c", "sub-a"]
    with pytest.raises(OptionError, match="matches no scene"):
        expand_inputs([str(tmp_path / "*.jp2")])
    with pytest.raises(SceneError, match="no such scene"):
        expand_inputs([str(tmp_path / "missing.tif")])


class _EventSource:
    """The two calls :class:`WorkerWatch` makes on a Dask client, and a way to publish an event."""

    def subscribe_topic(self, topic: str, handler: Any) -> None:
        self.topic, self.handler = topic, handler

    def unsubscribe_topic(self, topic: str) -> None:
        self.topic = None

    def publish(self, **message: Any) -> None:
        self.handler((time.time(), message))  # what the scheduler sends: (timestamp, message)


@pytest.mark.parametrize("mode", ["lines", "json"])
def test_a_worker_that_leaves_is_one_warning_line(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    """At the default verbosity; in --progress json mode as a JSON event the QGIS plugin reads."""
    import json
    import logging

    from rsgeo.cli import _configure_logging
    from rsgeo.cluster.watch import WorkerWatch

    _configure_logging(0, mode)
    try:
        source = _EventSource()
        with WorkerWatch(source) as watch:
            assert source.topic == "all"
            source.publish(action="add-worker", worker="tcp://10.0.0.2:4000")
            source.publish(action="remove-worker", worker="tcp://10.0.0.1:4000", expected=False,
                           **{"processing-tasks": ["rsgeo-block-ab12-0", "other-key"]})
            source.publish(action="remove-worker", worker="tcp://10.0.0.3:4000", expected=True)
            source.publish(action="retry", count=1)
            watch.report()
        assert source.topic is None and watch.left == ["tcp://10.0.0.1:4000"]
    finally:
        logging.basicConfig(force=True)
    lines = capsys.readouterr().err.splitlines()
    message = "worker tcp://10.0.0.1:4000 left the cluster; the block it held is run again (the output is unaffected)"
    if mode == "json":
        assert [json.loads(line) for line in lines] == [{"event": "warning", "level": "warning", "message": message}]
    else:
        assert lines == [f"rsgeo: WARNING: {message}"]


def test_bad_cluster_value_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("embed", str(shared("L7_ETMs.tif")), "-o", str(tmp_path / "o.gpkg"), "--model", "test:hash",
                   "--cluster", "local:0", check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "local:N" in proc.stderr


@pytest.mark.parametrize("extra, message", [
    (["--scenes-in-flight", "2"], "--scenes-in-flight needs --cluster"),
    (["--scenes-in-flight", "0", "--cluster", "local:1"], "1 or more, got 0"),
])
def test_bad_scenes_in_flight_is_one_line_before_any_work(tmp_path: Path, extra: list[str], message: str) -> None:
    proc = run_cli("batch", str(shared("L7_ETMs.tif")), "-o", str(tmp_path), "--model", "test:hash", *extra, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("rsgeo: error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


# -- the cluster against the single-machine path ---------------------------------


def embeddings(path: Path) -> list[tuple[int, bytes]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT tile_id, embedding FROM rsgeo_embeddings ORDER BY tile_id").fetchall()


def layer(path: Path, name: str):  # type: ignore[no-untyped-def]
    return pyogrio.read_dataframe(path, layer=name).sort_values("tile_id").reset_index(drop=True)


def assert_same_result(out: Path, ref: Path) -> None:
    emb = embeddings(out)
    assert emb == embeddings(ref) and len(emb) > 0
    assert [n for n, _ in pyogrio.list_layers(out)] == [n for n, _ in pyogrio.list_layers(ref)]
    for name in ("tiles", "landcover", "query_harbour"):
        a, b = layer(out, name), layer(ref, name)
        assert a.drop(columns="geometry").equals(b.drop(columns="geometry")), name
        assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all(), name
    with sqlite3.connect(out) as x, sqlite3.connect(ref) as y:
        q = "SELECT f_table_name, styleQML FROM layer_styles ORDER BY f_table_name"
        assert x.execute(q).fetchall() == y.execute(q).fetchall()


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> dict[str, Path]:
    """Single-machine results (no cluster), through the same API the CLI uses."""
    from rsgeo.api import classify, query
    from rsgeo.pipeline import RunOptions
    from rsgeo.scene import ReadOptions

    folder = tmp_path_factory.mktemp("single")
    options = RunOptions(model=f"local-dir:{tiny_clip_dir}")
    read = ReadOptions(chip_size=48, bands=(1, 2, 3))
    refs = {}
    for name in SCENES:
        out = classify(shared(name), folder / f"{Path(name).stem}.gpkg", classes=CLASSES.split(","), read=read,
                       options=options)
        query(out, None, texts=[TEXT], options=options)
        refs[Path(name).stem] = out
    return refs


def start_rsgeo(args: list[str], *, until: Any, **popen: Any) -> subprocess.Popen[str]:
    """Start the real ``rsgeo`` command; return once ``until()`` holds, the process ended, or 180 s passed."""
    proc = subprocess.Popen([sys.executable, "-m", "rsgeo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)
    deadline = time.monotonic() + 180
    while not until() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc


def interrupt(proc: subprocess.Popen[str], sig: int, early: str, *, timeout: float = 120) -> str:
    """Send ``sig`` to the running ``proc`` (``early``: the failure if it has already ended); its stderr once it
    exits (within ``timeout`` seconds)."""
    try:
        assert proc.poll() is None, early
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stderr


def batch_args(tiny_clip_dir: Path, out: Path, *extra: str, scenes: list[str] = SCENES) -> list[str]:
    return ["batch", *[str(shared(s)) for s in scenes], "-o", str(out), "--model", f"local-dir:{tiny_clip_dir}",
            *READ, "--classes", CLASSES, "--text", TEXT, "--cluster", "local:2", *extra]


@pytest.mark.slow
def test_batch_on_a_local_cluster_equals_single_machine(
    tmp_path: Path, tiny_clip_dir: Path, references: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    merged = tmp_path / "merged.gpkg"
    # all three scenes in flight at once (the default is two): still the single-machine bytes
    proc = run_cli(*batch_args(tiny_clip_dir, out, "--merge", str(merged), "--scenes-in-flight", "3", "-v"))
    workers = [int(n) for n in re.findall(r"blocks on (\d+) workers", proc.stderr)]
    assert len(workers) == 3 and max(workers) == 2, proc.stderr  # two worker processes did the work
    assert "scene 3/3 OSBS_029: 81/81 chips, done" in proc.stderr
    for stem, ref in references.items():
        assert_same_result(out / f"{stem}.gpkg", ref)
    # The merged file: every scene's rows, with their scene, and the per-scene styles.
    for name in ("tiles", "landcover", "query_harbour"):
        m = pyogrio.read_dataframe(merged, layer=name)
        assert list(m.columns[:2]) == ["scene", "tile_id"]
        for stem, ref in references.items():
            part = m[m.scene == stem].sort_values("tile_id").reset_index(drop=True)
            assert part.drop(columns=["scene", "geometry"]).equals(layer(ref, name).drop(columns="geometry"))
    scenes = pyogrio.read_dataframe(merged, layer="rsgeo_scenes")
    assert list(scenes.scene) == list(references) and list(scenes.tiles) == [len(embeddings(r)) for r in references.values()]
    with sqlite3.connect(merged) as db:
        assert {r[0] for r in db.execute("SELECT f_table_name FROM layer_styles")} == {"tiles", "cells", "landcover", "query_harbour"}
    # A merged file is not a single-scene result: asking it a question is one clear line.
    proc = run_cli("query", str(merged), "--text", "x", check=False)
    assert proc.returncode == 2 and "not an rsgeo result" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1



def _worker_pids(pid: int) -> list[int]:
    import psutil

    procs = psutil.Process(pid).children(recursive=True)
    return [p.pid for p in procs if any("spawn_main" in part for part in p.cmdline())]


@pytest.mark.slow
def test_worker_killed_mid_run_still_gives_identical_output(
    tmp_path: Path, tiny_clip_dir: Path, references: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    journal = out / "RGB.byte.gpkg.rsgeo-partial"
    scenes = SCENES[:2]
    proc = start_rsgeo(batch_args(tiny_clip_dir, out, scenes=scenes), until=lambda: journal_rows(journal) >= 20)
    try:
        workers = _worker_pids(proc.pid)
        assert proc.poll() is None and len(workers) == 2, "the run ended (or has no workers) before the kill"
        stored = journal_rows(journal)
        os.kill(workers[0], signal.SIGKILL)  # a real worker process, mid-run: it holds a block
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stored < 255, "the first scene was complete before the kill"
    assert not Path(f"/proc/{workers[0]}").exists()
    # Visible at the default verbosity, as one warning line.
    warnings = [line for line in stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert len(warnings) == 1 and re.fullmatch(
        r"rsgeo: WARNING: worker tcp://[\d.]+:\d+ left the cluster; (the block it held is|the \d+ blocks it held "
        r"are) run again \(the output is unaffected\)", warnings[0]), stderr
    assert "Traceback" not in stderr
    for name in scenes:
        assert_same_result(out / f"{Path(name).stem}.gpkg", references[Path(name).stem])


@pytest.mark.slow
def test_cluster_run_resumes_from_its_journal(tmp_path: Path, tiny_clip_dir: Path, references: dict[str, Path]) -> None:
    """A stopped cluster run continues with --resume without re-encoding stored chips."""
    out = tmp_path / "RGB.byte.gpkg"
    journal = out.with_name(out.name + ".rsgeo-partial")
    args = ["embed", str(shared("RGB.byte.tif")), "-o", str(out), "--model", f"local-dir:{tiny_clip_dir}", *READ,
            "--batch-size", "32", "--cluster", "local:2", "-v"]
    proc = start_rsgeo(args, until=lambda: journal_rows(journal) >= 40, start_new_session=True)
    assert proc.poll() is None, "the run ended before it could be stopped"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, like a lost head node
    proc.communicate(timeout=60)
    stored = journal_rows(journal)
    ref = references["RGB.byte"]
    total = len(embeddings(ref))
    assert 40 <= stored < total and not out.exists()
    # A block is one journal transaction (its chips and its nodata chips): every block with a row in
    # the journal is complete, and --resume must not send it again, nodata corners and all.
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:  # closed: the rerun writes it
        nodata = {r[0] for r in db.execute("SELECT tile_id FROM nodata")}
        kept = {r[0] for r in db.execute("SELECT tile_id FROM chips")}
    from rsgeo.scene import ReadOptions, Scene

    with Scene(shared("RGB.byte.tif"), ReadOptions(chip_size=48, bands=(1, 2, 3))) as scene:
        blocks = plan_blocks(scene.grid(224), workers=2, batch_size=32)
    journalled = kept | nodata
    complete = [ids for ids in (set(range(b.start, b.stop)) for b in blocks) if ids & journalled]
    assert all(ids <= journalled for ids in complete)
    assert any(ids & nodata for ids in complete), "no finished block had a nodata chip"
    resumed = run_cli(*args, "--resume")
    match = re.search(r"encoded (\d+) chips in (\d+) blocks .*\((\d+) blocks were already in the journal\)", resumed.stderr)
    assert match, resumed.stderr
    encoded_now, sent, skipped = (int(g) for g in match.groups())
    assert encoded_now == total - stored, "chips already in the journal were encoded again"
    assert (skipped, sent) == (len(complete), len(blocks) - len(complete)), "a finished block was read again"
    assert embeddings(out) == embeddings(ref)
    a, b = layer(out, "tiles"), layer(ref, "tiles")
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))


@pytest.mark.slow
def test_ctrl_c_with_two_scenes_in_flight_then_resume(
    tmp_path: Path, tiny_clip_dir: Path, references: dict[str, Path]
) -> None:
    """SIGINT while the batch runs two scenes at once: one line, exit 130, both journals kept; --resume finishes."""
    out = tmp_path / "out"
    out.mkdir()
    journals = [out / f"{Path(s).stem}.gpkg.rsgeo-partial" for s in SCENES[:2]]
    args = batch_args(tiny_clip_dir, out)
    proc = start_rsgeo(args, until=lambda: all(journal_rows(j) > 0 for j in journals))
    stderr = interrupt(proc, signal.SIGINT, "the run ended before both scenes were in flight")
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("rsgeo: interrupted; the scenes finished in"), stderr
    assert "Traceback" not in stderr
    outputs = [out / f"{Path(s).stem}.gpkg" for s in SCENES]
    assert not all(o.exists() for o in outputs), "every scene was complete before the interruption"
    for o in outputs:  # a scene is either complete, or has its journal (or had not started): never half-written
        assert not (o.exists() and o.with_name(o.name + ".rsgeo-partial").exists())
    run_cli(*args, "--resume")
    for name in SCENES:
        assert_same_result(out / f"{Path(name).stem}.gpkg", references[Path(name).stem])
    assert not any(out.glob("*.rsgeo-partial"))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, started by any of its threads (Dask starts workers from its loop thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


@pytest.mark.slow
def test_sigterm_while_the_local_cluster_starts_is_one_line_and_leaves_no_process(tmp_path: Path, tiny_clip_dir: Path) -> None:
    """SIGTERM as the worker processes are being started (before any chip): exit 130, one line, nothing left running.

    Dask's own exit handler used to close the half-started cluster again and print a traceback.
    """
    out = tmp_path / "out"
    out.mkdir()
    seen: list[int] = []

    def starting() -> bool:  # a worker process (not only multiprocessing's resource tracker) is starting
        for run in (c for c in _children(os.getpid()) if b"rsgeo" in _cmdline(c)):  # the rsgeo this test started
            seen.extend(c for c in _children(run) if c not in seen)
        return any(b"resource_tracker" not in _cmdline(c) for c in seen)

    proc = start_rsgeo(batch_args(tiny_clip_dir, out), until=starting)
    assert seen, "no worker process was started"
    stderr = interrupt(proc, signal.SIGTERM, "the run ended before a worker process was started", timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("rsgeo: interrupted"), stderr
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{c}").exists() for c in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in seen if Path(f"/proc/{c}").exists()], "a worker process outlived the run"
    assert not any(out.glob("*.gpkg"))
