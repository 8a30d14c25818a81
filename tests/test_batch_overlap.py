"""Scenes of a batch in flight at once (``run_batch(in_flight=N)``, what ``--cluster`` uses).

``encode`` here is a seam: the scheduling of whole scenes is under test, not
the encoding (tests/test_cluster.py runs the real thing on a Dask cluster).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rsgeo.batch import BatchScene, run_batch
from rsgeo.errors import Cancelled, SceneError


def plans(tmp_path: Path, n: int, done: tuple[int, ...] = ()) -> list[BatchScene]:
    return [BatchScene(i, tmp_path / f"s{i}.tif", tmp_path / f"s{i}.gpkg", f"s{i}", 10, i in done) for i in range(n)]


@pytest.mark.parametrize("in_flight", [2, 3])
def test_scenes_overlap_up_to_in_flight_and_outputs_keep_their_order(tmp_path: Path, in_flight: int) -> None:
    running: set[int] = set()
    most = 0
    lock = threading.Lock()
    overlapped = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def encode(plan, progress, cancel):  # type: ignore[no-untyped-def]
        nonlocal most
        with lock:
            running.add(plan.index)
            most = max(most, len(running))
            if len(running) == in_flight:
                overlapped.set()
        overlapped.wait(5)
        for done in range(0, 11, 5):
            progress(done, 10)
        time.sleep(0.01 * (6 - plan.index))  # later scenes finish first
        with lock:
            running.discard(plan.index)
        return plan.output

    ps = plans(tmp_path, 6, done=(1,))
    outputs = run_batch(ps, encode, progress=lambda i, d, t: seen.append((i, d, t)), in_flight=in_flight)
    assert overlapped.is_set() and most == in_flight
    assert outputs == [p.output for p in ps]
    assert (1, 10, 10) in seen  # a finished scene counts as done
    assert {i for i, d, t in seen if d == t} == set(range(6))


def test_a_failing_scene_stops_the_one_in_flight_and_its_error_is_raised(tmp_path: Path) -> None:
    cancelled: list[int] = []
    started: list[int] = []

    def encode(plan, progress, cancel):  # type: ignore[no-untyped-def]
        started.append(plan.index)
        if plan.index == 1:
            time.sleep(0.05)
            raise SceneError("s1.tif is damaged")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a long scene, polling its cancel check like the driver does
            if cancel():
                cancelled.append(plan.index)
                raise Cancelled("cancelled")
            time.sleep(0.01)
        return plan.output

    with pytest.raises(SceneError, match="s1.tif is damaged"):
        run_batch(plans(tmp_path, 4), encode, in_flight=2)
    assert cancelled == [0]
    assert 3 not in started  # nothing new starts after the failure


def test_in_flight_one_runs_scenes_one_after_another(tmp_path: Path) -> None:
    order: list[str] = []

    def encode(plan, progress, cancel):  # type: ignore[no-untyped-def]
        order.append(f"start {plan.index}")
        assert cancel() is False
        order.append(f"end {plan.index}")
        return plan.output

    run_batch(plans(tmp_path, 2), encode)
    assert order == ["start 0", "end 0", "start 1", "end 1"]
