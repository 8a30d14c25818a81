"""A long-lived question-answering process for interactive front ends (the QGIS panel).

``python -m rsgeo.worker`` reads one JSON request per line on stdin and writes
one JSON reply per line on stdout. Result files stay open between requests, so
their embeddings are read once and the text encoder stays loaded: a repeated
query costs one text encoding and one matrix-vector product. It uses only the
public API (:func:`rsgeo.open_result`); nothing is written to the result.

Requests are ``{"id": N, "op": NAME, ...}``; replies ``{"id": N, "ok": true,
"result": {...}}`` or ``{"id": N, "ok": false, "error": "one line"}``. At start
the worker writes ``{"event": "ready", "version": ...}``. Operations:

``ping``
    ``{}`` → ``{"version"}``.
``open``
    ``{"path", "device"?}`` → ``{"model_id", "tiles", "layers"}``; reads the embeddings.
``warm``
    ``{"path"}`` → ``{"seconds"}``; loads the text encoder (once per file's model).
``query``
    ``{"path", "text"?: [..], "like_tiles"?: [..], "unlike_tiles"?: [..], "like"?: [..],
    "unlike"?: [..], "threshold"?}`` → every kept tile best first: ``{"tile_id", "similarity"}``
    as base64 little-endian int64 / float32 arrays, and ``"count"``. With ``"raster": PATH``
    (and ``"top_k"``, default 20) the answer is a map instead, for results of any size: the
    similarity of every tile is written as a COG at PATH (:mod:`rsgeo.query_map`) and only the
    best tiles come back: ``{"raster", "count", "tile_id", "similarity", "centre_x", "centre_y"
    (b64 float64, the chips' centres in the result's CRS), "breaks" (quantiles to colour by),
    "seconds"}``.
``tile_at``
    ``{"path", "x", "y"}`` (the result's CRS) → ``{"tile_id"}``: the stored tile whose chip
    centre is nearest the point within the scene (the raster's cell there), or ``null``.
``classify``
    ``{"path", "classes"?: [..], "class_set"?, "lang"?}`` → ``{"classes", "tile_id"
    (b64 int64), "top" (b64 int32, index into classes), "top_score" (b64 float32)}``.
``class_sets``
    ``{}`` → ``{"names"}``: built-in class sets, if this rsgeo has any.
``close``
    ``{"path"}``; ``shutdown`` ``{}`` ends the process.

Anything the library prints goes to stderr (logs), never into the protocol.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np

from rsgeo.errors import RsgeoError

logger = logging.getLogger(__name__)


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode("ascii")


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return value


def _ints(value: Any, what: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{what} must be a list of whole numbers")
    return value


class Worker:
    """Answers requests (see the module docstring); one instance per process or thread."""

    def __init__(self) -> None:
        self._results: dict[str, Any] = {}
        self._ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": self.ping, "open": self.open, "warm": self.warm, "query": self.query,
            "classify": self.classify, "class_sets": self.class_sets, "close": self.close,
            "tile_at": self.tile_at,
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (never raises)."""
        rid = request.get("id")
        op = request.get("op")
        fn = self._ops.get(op) if isinstance(op, str) else None
        if fn is None:
            return {"id": rid, "ok": False, "error": f"unknown op {op!r}; use one of {', '.join(sorted(self._ops))}"}
        try:
            return {"id": rid, "ok": True, "result": fn(request)}
        except (RsgeoError, ValueError, OSError, KeyError, ImportError) as exc:
            return {"id": rid, "ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
        except Exception as exc:  # noqa: BLE001 - a front end needs a reply, the log keeps the traceback
            logger.exception("worker request %s failed", op)
            return {"id": rid, "ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    # -- operations -------------------------------------------------------------------------
    def ping(self, request: dict[str, Any]) -> dict[str, Any]:
        from rsgeo.version import __version__

        return {"version": __version__}

    def _result(self, request: dict[str, Any]) -> Any:
        path = request.get("path")
        if not isinstance(path, str):
            raise ValueError("the request has no 'path'")
        key = os.path.abspath(path)
        if key not in self._results:
            self.open(request)
        return self._results[key]

    def open(self, request: dict[str, Any]) -> dict[str, Any]:
        import rsgeo

        path = request.get("path")
        if not isinstance(path, str):
            raise ValueError("the request has no 'path'")
        key = os.path.abspath(path)
        result = rsgeo.open_result(key, device=request.get("device") or None)
        n = len(result.index)  # read the embeddings now, not on the first query
        self._results[key] = result
        return {"model_id": result.model_id, "tiles": n, "layers": result.layers}

    def warm(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self._result(request)
        start = time.perf_counter()
        result.query("warm-up", top_k=1)
        return {"seconds": round(time.perf_counter() - start, 3)}

    def query(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self._result(request)
        threshold = request.get("threshold")
        raster = request.get("raster")
        if raster is not None:
            return self._query_map(result, request, raster)
        frame = result.query(
            _strings(request.get("text"), "text"),
            like_tiles=_ints(request.get("like_tiles"), "like_tiles"),
            unlike_tiles=_ints(request.get("unlike_tiles"), "unlike_tiles"),
            like=_strings(request.get("like"), "like"),
            unlike=_strings(request.get("unlike"), "unlike"),
            threshold=None if threshold is None else float(threshold),
        )
        return {
            "count": int(len(frame)),
            "tile_id": _b64(frame["tile_id"].to_numpy(), "int64"),
            "similarity": _b64(frame["similarity"].to_numpy(), "float32"),
        }

    def _query_map(self, result: Any, request: dict[str, Any], raster: Any) -> dict[str, Any]:
        if not isinstance(raster, str) or not raster:
            raise ValueError("'raster' must be a file path")
        top_k = request.get("top_k", 20)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError("'top_k' must be a whole number of at least 1")
        answer = result.query_map(
            _strings(request.get("text"), "text"), raster, top_k=top_k,
            like_tiles=_ints(request.get("like_tiles"), "like_tiles"),
            unlike_tiles=_ints(request.get("unlike_tiles"), "unlike_tiles"),
            like=_strings(request.get("like"), "like"), unlike=_strings(request.get("unlike"), "unlike"),
        )
        return {
            "raster": str(answer.path),
            "count": answer.scored,
            "tile_id": _b64(answer.tile_ids, "int64"),
            "similarity": _b64(answer.similarity, "float32"),
            "centre_x": _b64(answer.centres[:, 0], "float64"),
            "centre_y": _b64(answer.centres[:, 1], "float64"),
            "breaks": answer.breaks,
            "seconds": {k: round(v, 4) for k, v in answer.seconds.items()},
        }

    def tile_at(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self._result(request)
        x, y = request.get("x"), request.get("y")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            raise ValueError("'x' and 'y' must be numbers")
        return {"tile_id": result.tile_at(float(x), float(y))}  # type: ignore[arg-type]

    def classify(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self._result(request)
        classes = _strings(request.get("classes"), "classes")
        class_set = request.get("class_set") or None
        lang = request.get("lang") or None
        if class_set:
            from rsgeo.questions import ClassChoice  # the class set's own prompts and names

            frame = result.classify(class_set=str(class_set), lang=lang)
            classes = ClassChoice(class_set=str(class_set), lang=lang).names
        elif classes:
            frame = result.classify(classes, lang=lang)
        else:
            raise ValueError("give 'classes' or a 'class_set'")
        names = list(classes)
        index = {name: i for i, name in enumerate(names)}
        top = np.asarray([index[str(c)] for c in frame["top_class"]], np.int32)
        return {
            "classes": names,
            "tile_id": _b64(frame["tile_id"].to_numpy(), "int64"),
            "top": _b64(top, "int32"),
            "top_score": _b64(frame["top_score"].to_numpy(), "float32"),
        }

    def class_sets(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            from rsgeo.classsets import list_class_sets
        except ImportError:
            return {"names": []}
        return {"names": [str(n) for n in list_class_sets()]}

    def close(self, request: dict[str, Any]) -> dict[str, Any]:
        path = request.get("path")
        self._results.pop(os.path.abspath(path), None) if isinstance(path, str) else None
        return {}


def serve(stdin: IO[str], out: IO[str], worker: Worker | None = None) -> None:
    """Answer requests from ``stdin`` until it closes or a ``shutdown`` arrives."""
    from rsgeo.version import __version__

    worker = worker or Worker()
    out.write(json.dumps({"event": "ready", "version": __version__, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as exc:
            reply: dict[str, Any] = {"id": None, "ok": False, "error": f"bad request: {exc}"}
        else:
            if request.get("op") == "shutdown":
                out.write(json.dumps({"id": request.get("id"), "ok": True, "result": {}}) + "\n")
                out.flush()
                return
            reply = worker.handle(request)
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rsgeo.worker``: protocol on stdout, everything else on stderr."""
    # Keep the protocol channel clean: whatever a library prints goes to stderr.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="rsgeo-worker: %(levelname)s: %(message)s", stream=sys.stderr)
    stdin = open(sys.stdin.fileno(), encoding="utf-8", closefd=False)
    try:
        serve(stdin, protocol)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
