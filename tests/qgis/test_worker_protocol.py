"""``python -m rsgeo.worker`` (the panel's long-lived process), spoken to directly over JSON lines."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
from pathlib import Path


def _ask(proc: subprocess.Popen, request: dict) -> dict:
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_worker_protocol(rsgeo_python: str, embedded: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([rsgeo_python, "-m", "rsgeo.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["pid"] == proc.pid
        assert _ask(proc, {"id": 1, "op": "ping"}) == {"id": 1, "ok": True, "result": {"version": ready["version"]}}
        opened = _ask(proc, {"id": 2, "op": "open", "path": str(embedded)})
        assert opened["ok"] and opened["result"]["tiles"] > 50 and opened["result"]["model_id"].startswith("test:")
        reply = _ask(proc, {"id": 3, "op": "query", "path": str(embedded), "text": ["coral reef"]})
        assert reply["ok"], reply
        n = reply["result"]["count"]
        ids = struct.unpack(f"<{n}q", base64.b64decode(reply["result"]["tile_id"]))
        sims = struct.unpack(f"<{n}f", base64.b64decode(reply["result"]["similarity"]))
        assert n == opened["result"]["tiles"] and len(set(ids)) == n
        assert list(sims) == sorted(sims, reverse=True) and -1.0 <= sims[-1] <= sims[0] <= 1.0
        like = _ask(proc, {"id": 4, "op": "query", "path": str(embedded), "like_tiles": [ids[-1]]})
        first = struct.unpack("<q", base64.b64decode(like["result"]["tile_id"])[:8])[0]
        first_sim = struct.unpack("<f", base64.b64decode(like["result"]["similarity"])[:4])[0]
        assert abs(first_sim - 1.0) < 1e-3 and (first == ids[-1] or first_sim >= 0.999)
        classes = _ask(proc, {"id": 5, "op": "classify", "path": str(embedded), "classes": ["sea", "land"]})
        assert classes["ok"] and classes["result"]["classes"] == ["sea", "land"]
        # Mistakes get one-line errors and the worker keeps going.
        assert _ask(proc, {"id": 6, "op": "nope"})["error"].startswith("unknown op 'nope'")
        assert not _ask(proc, {"id": 7, "op": "query", "path": str(embedded)})["ok"]  # nothing to ask
        assert "no 'path'" in _ask(proc, {"id": 8, "op": "open"})["error"]
        proc.stdin.write("this is not json\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["error"].startswith("bad request")
        assert _ask(proc, {"id": 9, "op": "shutdown"})["ok"]
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
