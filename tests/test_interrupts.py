"""SIGINT and SIGKILL at random points never damage an existing output (issue 7).

Each case starts the real ``rsgeo`` command over an existing result (with
``--overwrite``, or adding layers in place), interrupts it at a point drawn
from a seeded RNG, and checks that

* the existing output is byte for byte what it was (or, if the run had already
  finished, exactly the uninterrupted result: nothing in between);
* rerunning the same command (with ``--resume`` for scenes) gives exactly the
  result of an uninterrupted run, and leaves no journal or temporary file.

Points: ``startup`` (a delay after the process starts: imports, opening the
scene), ``encoding`` (after the k-th progress event, chips half encoded),
``writing`` (as soon as the temporary GeoPackage appears) and ``written`` (as
soon as it has been moved into place: the message must then say so). Set
``RSGEO_INTERRUPT_SEED`` to draw other points; the seed and point are in every
test id, so a failure reproduces.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import rasterio

from tests import corpus as C

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("RSGEO_INTERRUPT_SEED", "20261123"))
CHIP = 112  # 12 x 8 = 96 chips of a 1344 x 896 scene, resized to the encoder's 224
RUN = ["--model", "test:hash", "--chip-size", str(CHIP), "--batch-size", "4", "--workers", "1"]
QUESTIONS = {
    "classify": ["--classes", "forest,water,urban area,farmland"],
    "query": ["--text", "a harbour", "--text", "dense forest"],
    "embed": [],
}


@dataclass(frozen=True)
class Point:
    kind: str  # startup | encoding | writing | written
    value: float = 0.0  # seconds after start, or the progress event to wait for

    def __str__(self) -> str:
        names = {"startup": f"startup+{self.value:.2f}s", "encoding": f"encoding@event{int(self.value)}"}
        return names.get(self.kind, self.kind)


def draw_cases() -> list[tuple[str, int, Point]]:
    """Two points per command and signal: one early (startup or encoding), one while writing."""
    rng = random.Random(SEED)
    cases: list[tuple[str, int, Point]] = []
    for command in ("classify", "query", "embed"):
        for sig in (signal.SIGINT, signal.SIGKILL):
            early = (
                Point("startup", round(rng.uniform(0.0, 1.5), 2))
                if rng.random() < 0.3
                else Point("encoding", rng.randint(1, 4))
            )
            cases += [(command, sig, early), (command, sig, Point("writing"))]
    for sig in (signal.SIGINT, signal.SIGKILL):  # answering from a stored result, in place
        cases += [("classify-stored", sig, Point("startup", round(rng.uniform(0.3, 1.5), 2))), ("classify-stored", sig, Point("writing"))]
    # Ctrl-C just after the output was moved into place, before the process ends
    cases += [("embed", signal.SIGINT, Point("written")), ("classify-stored", signal.SIGINT, Point("written"))]
    return cases


CASES = draw_cases()


def case_id(case: tuple[str, int, Point]) -> str:
    command, sig, point = case
    return f"{command}-{signal.Signals(sig).name}-{point}-seed{SEED}"


# -- running and interrupting ------------------------------------------------------------


def argv(command: str, scene: Path, out: Path, *extra: str) -> list[str]:
    if command == "classify-stored":  # adds a layer to the result ``out`` itself
        return ["classify", str(out), *QUESTIONS["classify"], "--progress", "json", *extra]
    return [command, str(scene), "-o", str(out), *QUESTIONS[command], *RUN, "--progress", "json", *extra]


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rsgeo", *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


@dataclass
class Outcome:
    returncode: int
    stderr: str
    signalled: bool  # False: the run had already exited when the point came


def interrupt(args: list[str], sig: int, point: Point, out: Path) -> Outcome:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rsgeo", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    events = threading.Semaphore(0)

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            try:
                event = json.loads(line) if line.startswith("{") else {}
            except json.JSONDecodeError:  # a line cut short by SIGKILL
                continue
            if event.get("event") == "progress" and event.get("done", 0) > 0:
                events.release()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    if point.kind == "startup":
        time.sleep(point.value)
    elif point.kind == "encoding":
        for _ in range(int(point.value)):
            while not events.acquire(timeout=0.05):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
    else:
        tmp = out.with_name(f".{out.stem}.tmp-{proc.pid}.gpkg")
        while not tmp.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if point.kind == "written":
            while tmp.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
    signalled = proc.poll() is None
    if signalled:
        proc.send_signal(sig)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    if signalled and sig == signal.SIGKILL and proc.returncode != -signal.SIGKILL:
        # the run exited between poll() and the kill (nothing survives a SIGKILL that lands):
        # it was not signalled, and is judged as a run that finished
        signalled = False
    return Outcome(proc.returncode, "".join(lines), signalled)


# -- comparing results ----------------------------------------------------------------------


def fingerprint(path: Path) -> tuple[str, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns


def content(path: Path) -> dict[str, list[tuple]]:
    """Everything a result says, table by table, without the run's date and command."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name")]
        out: dict[str, list[tuple]] = {}
        for table in tables:
            if table == "rsgeo_metadata":
                rows = db.execute("SELECT key, value FROM rsgeo_metadata WHERE key != 'run' ORDER BY key").fetchall()
                # the side rasters are named after the output file: compare them by content, not name
                rasters = json.loads(dict(rows).get("rasters", "{}"))
                rows = [(k, v.replace(json.dumps(path.stem + "_")[1:-1], "<output>_")) for k, v in rows]
                out["<side rasters>"] = [(name, raster_pixels(path.parent / rec["path"])) for name, rec in sorted(rasters.items())]
            elif table == "layer_styles":
                rows = db.execute("SELECT f_table_name, f_geometry_column, styleQML FROM layer_styles ORDER BY f_table_name").fetchall()
            else:
                columns = [f'"{r[1]}"' for r in db.execute(f'PRAGMA table_info("{table}")') if r[1] != "fid"]
                rows = db.execute(f'SELECT {", ".join(columns)} FROM "{table}" ORDER BY {", ".join(columns)}').fetchall()
            out[table] = rows
    return out


def raster_pixels(path: Path) -> tuple:
    """A side raster's georeferencing, band names and pixel bytes (NaN-safe)."""
    with rasterio.open(path) as src:
        return (src.crs.to_wkt(), tuple(src.transform), src.descriptions, src.nodata is None, src.read().tobytes())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.name.endswith(("-wal", "-shm", "-journal")))


# -- fixtures: the scene, the uninterrupted results ---------------------------------------------


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("interrupts")
    scene = C.rgb(folder, "scene.tif", width=1344, height=896, block=256)
    paths = {"scene": scene}
    for command in ("classify", "query", "embed"):
        paths[command] = folder / f"reference-{command}.gpkg"
        run(argv(command, scene, paths[command]))
    # classify-stored: a layer added in place to an embed result
    paths["embedded"] = paths["embed"]
    stored = folder / "reference-classify-stored.gpkg"
    shutil.copyfile(paths["embed"], stored)
    run(argv("classify-stored", scene, stored))
    paths["classify-stored"] = stored
    return paths


@pytest.mark.parametrize("command, sig, point", CASES, ids=[case_id(c) for c in CASES])
def test_interrupt_never_damages_the_output_and_a_rerun_completes(
    tmp_path: Path, setting: dict[str, Path], command: str, sig: int, point: Point
) -> None:
    scene, reference = setting["scene"], setting[command]
    out = tmp_path / "result.gpkg"
    # an earlier result is in the way: another command's, or (in place) the result being extended
    earlier = setting["embedded"] if command in ("classify", "query", "classify-stored") else setting["classify"]
    shutil.copyfile(earlier, out)
    os.utime(out, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    before = fingerprint(out)
    rerun_flags = [] if command == "classify-stored" else ["--overwrite", "--resume"]
    args = argv(command, scene, out, *([] if command == "classify-stored" else ["--overwrite"]))

    outcome = interrupt(args, sig, point, out)

    changed = fingerprint(out) != before
    messages = [line for line in outcome.stderr.splitlines() if not line.startswith("{")]
    if changed:  # only ever by the whole, finished result
        assert content(out) == content(reference), f"{point}: the output was replaced by an incomplete result"
    if point.kind == "written":
        assert changed, f"{point}: the output was not written ({outcome})"
    elif point.kind != "startup":  # anchored points land while the run is going on
        assert outcome.signalled and not changed, f"the run finished before {point}: make the scene larger"
    if not outcome.signalled:
        assert outcome.returncode == 0 and changed, outcome.stderr
    elif sig == signal.SIGKILL:
        assert outcome.returncode == -signal.SIGKILL
    elif any(m.startswith("rsgeo: interrupted") for m in messages):  # one line, and a true one
        # 130, or death by SIGINT (what a shell also reports as 130): CPython 3.11 exits by SIGINT
        # when the Ctrl-C landed in an extension's import, even though rsgeo handled it.
        assert outcome.returncode in (130, -signal.SIGINT), outcome.stderr
        assert len(messages) == 1, outcome.stderr
        assert ("left as it was" in messages[0]) == (not changed), messages[0]
        assert "Traceback" not in outcome.stderr
        assert leftovers(tmp_path) == [], "an interrupted run left temporary files"
    elif messages and messages[-1].startswith("rsgeo: wrote"):
        # Ctrl-C after main() returned (death by SIGINT), or one CPython swallowed: it can land in
        # an import-lock callback, where it is "ignored" and the run goes on to the end
        assert outcome.returncode in (0, -signal.SIGINT) and changed, outcome.stderr
    else:  # Ctrl-C before rsgeo's handler existed: during interpreter start-up (nothing printed),
        # or while Python imported rsgeo's command line (a KeyboardInterrupt traceback outside main)
        assert point.kind == "startup" and not changed, outcome.stderr
        assert outcome.returncode == -signal.SIGINT, outcome.stderr
        assert outcome.stderr == "" or outcome.stderr.rstrip().endswith("KeyboardInterrupt"), outcome.stderr
        assert ", in main\n" not in outcome.stderr, outcome.stderr

    if command == "classify-stored" and fingerprint(out) != before:
        return  # the layer was added already: a rerun would add a second one
    run(argv(command, scene, out, *rerun_flags))
    assert content(out) == content(reference), f"after {point} and a rerun, the result differs from an uninterrupted run"
    assert leftovers(tmp_path) == [], "temporary files were left after the rerun"
    assert not out.with_name(out.name + ".rsgeo-partial").exists(), "the journal was not removed"


@pytest.mark.parametrize("left", ["empty-file", "no-tables"])
def test_resume_after_a_kill_while_the_journal_was_created(tmp_path: Path, setting: dict[str, Path], left: str) -> None:
    out = tmp_path / "result.gpkg"
    journal = out.with_name(out.name + ".rsgeo-partial")
    if left == "empty-file":
        journal.write_bytes(b"")
    else:  # connected and switched to WAL, killed before CREATE TABLE was committed
        db = sqlite3.connect(journal)
        db.execute("PRAGMA journal_mode=WAL")
        db.close()
    run(argv("embed", setting["scene"], out, "--resume"))
    assert content(out) == content(setting["embed"])


@pytest.mark.parametrize("progress", ["json", "none"])
def test_ctrl_c_while_the_result_is_announced_is_not_a_second_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, progress: str
) -> None:
    """The Ctrl-C lands between "done" and "rsgeo: wrote": one line, exit 0, the result complete.

    Drawn at random, the ``written`` point above hit this window once in CI and got both
    "rsgeo: wrote" and "rsgeo: interrupted after ... was written"; here it is hit every time.
    """
    from rsgeo.cli import main
    from rsgeo.cli.progress import Progress

    scene = C.rgb(tmp_path, "scene.tif", width=448, height=224)
    out = tmp_path / "result.gpkg"
    done = Progress.done

    def done_then_ctrl_c(self: Progress, output: str) -> None:
        done(self, output)
        os.kill(os.getpid(), signal.SIGINT)  # Python's handler raises at the next bytecode, if it may

    monkeypatch.setattr(Progress, "done", done_then_ctrl_c)
    code = main(["embed", str(scene), "-o", str(out), *RUN, "--progress", progress])

    messages = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("{")]
    assert code == 0
    assert messages == [f"rsgeo: wrote {out}"]
    assert out.exists() and leftovers(tmp_path) == []
