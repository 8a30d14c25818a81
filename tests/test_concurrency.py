"""Two things at once on one output: real ``rsgeo`` processes (issue 17).

Where the interleaving matters it is forced, not hoped for: the first run is
stopped (``SIGSTOP``) once it holds the output's lock, the second runs against
it, then the first continues (``SIGCONT``). The free-running races are run
several times. The ``test:hash`` encoder and 64-pixel chips keep every run
short.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyogrio
import pytest

from rsgeo.definitions.schema import LOCK_SUFFIX, journal_path, lock_path
import rsgeo.locks
from rsgeo.locks import OutputLock, process_start_ticks
from rsgeo.errors import OutputBusyError
from rsgeo.resultcheck import check_result
from tests import corpus as C
from tests.test_corpus import CHIPS, MODEL, assert_one_line_error, tiles

EXIT_BUSY = 75
pytestmark = pytest.mark.slow  # real processes: about 25 Python start-ups


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rsgeo", *map(str, args), "--progress", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.002)


def assert_whole(out: Path, n_tiles: int) -> dict:
    meta = check_result(out)  # every table there, one embedding per tile, no corrupt page
    assert len(tiles(out)) == n_tiles
    assert not lock_path(out).exists(), "the lock was left behind"
    return meta


def big_scene(folder: Path) -> Path:
    """512 x 384 pixels: 48 chips of 64."""
    return C.rgb(folder, "big.tif", width=512, height=384)


def embedded(folder: Path, name: str = "result.gpkg") -> Path:
    """A result of the default scene, made in this process (no start-up to wait for)."""
    from rsgeo.api import embed
    from rsgeo.options import RunOptions
    from rsgeo.scene import ReadOptions

    return embed(C.rgb(folder), folder / name, read=ReadOptions(chip_size=C.CHIP), options=RunOptions(model="test:hash"))


def test_second_embed_to_a_locked_output_is_one_line_and_the_first_completes(tmp_path: Path) -> None:
    scene = big_scene(tmp_path)
    out = tmp_path / "out.gpkg"
    first = start("embed", scene, "-o", out, *MODEL, *CHIPS)
    wait_for(lock_path(out), first)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = finish(start("embed", scene, "-o", out, *MODEL, *CHIPS, "--overwrite", "--resume"))
    finally:
        os.kill(first.pid, signal.SIGCONT)
    for proc in (second,):
        line = assert_one_line_error(proc, str(out), "being written by another run", f"pid {first.pid}",
                                     socket.gethostname(), LOCK_SUFFIX, code=EXIT_BUSY)
        assert "embed" in line
    done = finish(first)
    assert done.returncode == 0, done.stderr
    assert_whole(out, 48)
    assert not journal_path(out).exists()


@pytest.mark.parametrize("attempt", range(2))
def test_two_embeds_started_together_leave_one_whole_result(tmp_path: Path, attempt: int) -> None:
    scene = big_scene(tmp_path)
    out = tmp_path / "out.gpkg"
    procs = [start("embed", scene, "-o", out, *MODEL, *CHIPS, "--overwrite") for _ in range(2)]
    results = [finish(p) for p in procs]
    codes = sorted(r.returncode for r in results)
    assert codes in ([0, 0], [0, EXIT_BUSY]), [r.stderr for r in results]
    for r in results:
        if r.returncode == EXIT_BUSY:
            assert_one_line_error(r, "being written by another run", code=EXIT_BUSY)
        else:
            assert r.stderr.strip() == f"rsgeo: wrote {out}"
    assert_whole(out, 48)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_two_in_place_queries_wait_their_turn_and_keep_both_layers(tmp_path: Path) -> None:
    result = embedded(tmp_path)
    first = start("query", result, "--text", "harbour")
    wait_for(lock_path(result), first)
    os.kill(first.pid, signal.SIGSTOP)
    second = start("query", result, "--text", "vineyard")
    time.sleep(3)  # long enough for the second to reach the lock and wait at it
    assert second.poll() is None, "the second query did not wait for the first"
    os.kill(first.pid, signal.SIGCONT)
    for proc in (finish(first), finish(second)):
        assert proc.returncode == 0, proc.stderr
    meta = assert_whole(result, 12)
    assert set(meta["layers"]) == {"tiles", "cells", "query_harbour", "query_vineyard"}
    names = {name for name, _ in pyogrio.list_layers(result)}
    assert {"query_harbour", "query_vineyard"} <= names


@pytest.mark.parametrize("attempt", range(3))
def test_in_place_queries_started_together_lose_no_layer(tmp_path: Path, attempt: int) -> None:
    result = embedded(tmp_path)
    procs = [start("query", result, "--text", "harbour"), start("classify", result, "--classes", "forest,water")]
    for proc in procs:
        done = finish(proc)
        assert done.returncode == 0, done.stderr
    meta = assert_whole(result, 12)
    assert set(meta["layers"]) == {"tiles", "cells", "query_harbour", "landcover"}


READER = """
import sys, rsgeo
for _ in range(int(sys.argv[2])):
    r = rsgeo.open_result(sys.argv[1])
    n = len(r.index)
    q = r.query("harbour")
    assert len(q) == n == r.grid.n_rows * r.grid.n_cols, (len(q), n)
    print(n, flush=True)
"""


def test_overwrite_while_readers_read_gives_them_the_old_or_the_new_file(tmp_path: Path) -> None:
    """A writer replaces the result again and again, with grids of 12 and 48 chips; readers
    reading it meanwhile (the CLI to another output, and open_result) each see one whole version."""
    result = embedded(tmp_path)
    scene = tmp_path / "rgb.tif"
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom rsgeo.cli import main\n"
         "for i in range(3):\n"
         "    code = main(['embed', sys.argv[1], '-o', sys.argv[2], '--model', 'test:hash', '--chip-size', "
         "'32' if i % 2 == 0 else '64', '--overwrite', '--progress', 'none', '-q'])\n"
         "    assert code == 0, code\n",
         str(scene), str(result)],
        stderr=subprocess.PIPE, text=True,
    )
    python_reader = subprocess.Popen([sys.executable, "-c", READER, str(result), "8"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli_runs = []
    k = 0
    while writer.poll() is None or k < 2:
        out = tmp_path / f"q{k}.gpkg"
        cli_runs.append((out, finish(start("query", result, "-o", out, "--text", "harbour"))))
        k += 1
    assert writer.wait() == 0, writer.stderr.read() if writer.stderr else ""
    seen = finish(python_reader)
    assert seen.returncode == 0, seen.stderr
    assert set(seen.stdout.split()) <= {"12", "48"}
    for out, proc in cli_runs:
        assert proc.returncode == 0, proc.stderr
        n = len(tiles(out))
        assert n in (12, 48)
        assert len(tiles(out, "query_harbour")) == n  # answered from the same version as its tiles
        check_result(out)


# -- stale locks --------------------------------------------------------------------------------


def test_lock_of_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    scene = big_scene(tmp_path)
    out = tmp_path / "out.gpkg"
    first = start("embed", scene, "-o", out, *MODEL, *CHIPS)
    wait_for(lock_path(out), first)
    first.kill()
    first.wait()
    assert lock_path(out).exists()
    again = finish(start("embed", scene, "-o", out, *MODEL, *CHIPS, "--resume", "-v"))
    assert again.returncode == 0, again.stderr
    assert "removing the lock" in again.stderr
    assert_whole(out, 48)


def write_lock(out: Path, **fields: object) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z",
              "process_start": process_start_ticks(os.getpid()), "command": "rsgeo embed x.tif"}
    record.update(fields)
    lock_path(out).write_text(json.dumps(record))


def test_lock_of_a_reused_pid_is_stale(tmp_path: Path) -> None:
    """pid 1 is alive, but it is not the process that took the lock (that one started at tick 0)."""
    out = tmp_path / "out.gpkg"
    write_lock(out, pid=1, process_start=-1)
    with OutputLock(out):  # this process takes it: the holder on record is gone
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert not lock_path(out).exists()


def test_lock_of_another_host_is_respected_with_a_line_saying_what_to_delete(tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    write_lock(out, pid=4242, host="cluster-node-7")
    from tests.test_reliability import run_rsgeo

    proc = run_rsgeo("embed", C.rgb(tmp_path), "-o", out, *MODEL, *CHIPS)
    assert_one_line_error(proc, "pid 4242 on cluster-node-7", f"delete {lock_path(out)}", code=EXIT_BUSY)
    assert not out.exists() and lock_path(out).exists()


def test_lock_of_a_live_process_on_this_host_is_respected(tmp_path: Path) -> None:
    out = tmp_path / "out.gpkg"
    lock = OutputLock(out, command="rsgeo test")
    with lock:
        with pytest.raises(OutputBusyError, match="being written by another run"):
            OutputLock(out).acquire()
        proc = finish(start("embed", C.rgb(tmp_path), "-o", out, *MODEL, *CHIPS))
        assert_one_line_error(proc, f"pid {os.getpid()}", code=EXIT_BUSY)
        assert not out.exists()
    assert not lock_path(out).exists()


def test_unreadable_lock_is_waited_on_then_broken_when_old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty or damaged lock file (a crash of the filesystem, an editor) is waited on for
    the grace period, then taken."""
    import rsgeo.locks

    monkeypatch.setattr(rsgeo.locks, "UNREADABLE_GRACE_S", 1.0)
    out = tmp_path / "out.gpkg"
    lock_path(out).write_text("")
    began = time.monotonic()
    with OutputLock(out):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert time.monotonic() - began >= 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the lock nor the record it was linked from


def test_lock_of_a_killed_run_not_yet_reaped_is_stale(tmp_path: Path) -> None:
    """A run killed by its parent, which has not waited for it yet (a zombie: ``kill -0`` still finds it)."""
    out = tmp_path / "out.gpkg"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(out, pid=child.pid, process_start=process_start_ticks(child.pid))
        child.kill()
        deadline = time.monotonic() + 10
        while not rsgeo.locks.is_zombie(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rsgeo.locks.is_zombie(child.pid)
        with OutputLock(out):
            assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    finally:
        child.wait()
