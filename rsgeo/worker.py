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
    ``{"path", "classes"?: [..], "class_set"?, "lang"?}`` → ``{"classes", "colours", "tile_id"
    (b64 int64), "top" (b64 int32, index into classes), "top_score" (b64 float32)}``. With
    ``"raster": PATH`` the answer is a map instead, for results of any size: the top class of
    every tile as a paletted COG at PATH (its ``.qml`` beside it) and only ``{"raster", "classes",
    "colours", "counts" (tiles per class), "count", "seconds"}``.
``class_sets``
    ``{}`` → ``{"names"}``: built-in class sets, if this rsgeo has any.
``search``
    ``{"path", "text"?: [..], "yes"?: [ids], "no"?: [ids], "top_k"?, "candidates"?: N}`` → the
    label-and-refine search (docs/refine.md): a yes/no probe refitted on the tiles marked so far
    (the full sets, every request), every kept tile re-ranked best first as for ``query``, plus
    ``"candidates"`` (b64 int64: the N best-ranked tiles not labelled yet, to judge next: the
    hard-negative round), ``"seconds"`` (refit + re-rank) and ``"yes"``/``"no"`` counts.
``save_labels``
    ``{"path", "layer", "yes": [ids], "no": [ids], "target"?}`` → ``{"path", "layer", "count"}``:
    writes the labels as a layer (``tile_id``, ``label`` yes/no) of ``target`` (default: the result).
``load_labels``
    ``{"path", "labels", "field", "layer"?}`` → ``{"yes": [ids], "no": [ids]}`` from a vector file or a saved layer.
``open_archive``
    ``{"paths": [..], "device"?, "checkpoint"?, "cache_dir"?}`` (result files, patterns or folders)
    → ``{"results", "tiles", "model_id", "held", "index", "seconds"}``; checks that one model made
    them all and loads its text encoder (kept for the archive's queries). An archive of at most
    :data:`HELD_ARCHIVE_TILES` tiles is held open (``"held": true``: every result's embeddings
    read once, :class:`rsgeo.archive_open.OpenArchive`); a larger one is asked through an
    approximate index in its folder that describes it (``"index"``: the file, built by
    ``rsgeo query FOLDER --index FOLDER/NAME``; :func:`rsgeo.archive_index.find_index`), read once,
    else streamed at each query.
``archive_query``
    ``{"paths": [..], "text": [..], "output", "top_k"?: 20, "threshold"?}`` → the query put to
    every result at once (:func:`rsgeo.archive.query_archive`, exact, streamed in chunks: only
    the best tiles are ever held; from memory for a held archive): ``{"output", "layers", "count",
    "seconds"}``, the answer
    written to ``output`` (a new GeoPackage, replaced if it exists) as one styled ranked layer
    per text with the scene of each tile. The folder is listed again on every query: results
    added since are searched.
``close``
    ``{"path"}``; ``shutdown`` ``{}`` ends the process.

Anything the library prints goes to stderr (logs), never into the protocol.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from rsgeo.errors import RsgeoError

logger = logging.getLogger(__name__)

#: Archives of at most this many tiles are held in memory by ``open_archive`` (1 KiB a 512-d
#: float16 tile: ~2 GB), larger ones streamed from their files at every query.
HELD_ARCHIVE_TILES = 2_000_000


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
            "search": self.search, "save_labels": self.save_labels, "load_labels": self.load_labels,
            "tile_at": self.tile_at, "open_archive": self.open_archive, "archive_query": self.archive_query,
        }
        #: Text encoders of the archives opened, by the archive's model id.
        self._archive_encoders: dict[str, Any] = {}
        #: Archives held open (in memory), by their inputs.
        self._archives: dict[tuple[str, ...], Any] = {}
        #: Approximate indexes of the archives too large to hold, by the archive's paths: (file, index).
        self._indexes: dict[tuple[str, ...], tuple[Path, Any]] = {}
        self._searches: dict[tuple[str, tuple[str, ...]], Any] = {}

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
        result = rsgeo.open_result(
            key, device=request.get("device") or None, checkpoint=request.get("checkpoint") or None,
            cache_dir=request.get("cache_dir") or None,
        )
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
        from rsgeo.questions import ClassChoice  # the class set's own prompts, names and colours

        if class_set:
            choice = ClassChoice(class_set=str(class_set), lang=lang)
        elif classes:
            choice = ClassChoice(classes=tuple(classes), lang=lang)
        else:
            raise ValueError("give 'classes' or a 'class_set'")
        if request.get("raster"):  # a map: no per-tile frame is built
            return self._class_map(result, choice, str(request["raster"]))
        if class_set:
            frame = result.classify(class_set=str(class_set), lang=lang)
        else:
            frame = result.classify(classes, lang=lang)
        names = choice.names
        index = {name: i for i, name in enumerate(names)}
        top = np.asarray([index[str(c)] for c in frame["top_class"]], np.int32)
        return {
            "classes": names,
            "colours": choice.colours,  # the stored style's colours: the panel's layer looks the same
            "tile_id": _b64(frame["tile_id"].to_numpy(), "int64"),
            "top": _b64(top, "int32"),
            "top_score": _b64(frame["top_score"].to_numpy(), "float32"),
        }

    def _class_map(self, result: Any, choice: Any, path: str) -> dict[str, Any]:
        from rsgeo.query_map import class_map
        from rsgeo.questions import class_embeddings

        start = time.perf_counter()
        resolved = class_embeddings(result.encoder, choice)
        index = result.index
        step = 65536
        # The map needs only the top class: the argmax of the cosines (softmax keeps the order), in one
        # float32 product per block -- 30x cheaper than the float64 softmax scores of the layers; it can
        # differ from them only on ties to ~1e-7.
        classes = np.ascontiguousarray(resolved.embeddings.T, np.float32)
        top = np.concatenate([
            (np.asarray(index.embeddings[s : s + step], np.float32) @ classes).argmax(axis=1)
            for s in range(0, len(index), step)
        ]) if len(index) else np.zeros(0, np.int64)
        scored = time.perf_counter() - start
        colours = [(int(r), int(g), int(b)) for r, g, b in (c.split(",")[:3] for c in choice.colours)]
        answer = class_map(result.grid, index.tile_ids, top, list(resolved.names), colours, path)
        return {
            "raster": str(answer.path), "classes": list(resolved.names), "colours": choice.colours,
            "counts": answer.counts, "count": answer.scored,
            "seconds": {"score": round(scored, 4), **{k: round(v, 4) for k, v in answer.seconds.items()}},
        }

    def class_sets(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            from rsgeo.classsets import list_class_sets
        except ImportError:
            return {"names": []}
        return {"names": [str(n) for n in list_class_sets()]}

    def open_archive(self, request: dict[str, Any]) -> dict[str, Any]:
        from rsgeo.archive import load_text_encoder, tile_count
        from rsgeo.archive_open import OpenArchive
        from rsgeo.collection import open_collection

        paths = _strings(request.get("paths"), "paths")
        start = time.perf_counter()
        members = open_collection(paths)
        model_id = str(members[0].model.get("model_id"))
        if model_id not in self._archive_encoders:
            encoder = load_text_encoder(members[0], device=request.get("device") or None,
                                        checkpoint=request.get("checkpoint") or None,
                                        cache_dir=request.get("cache_dir") or None)
            encoder.encode_texts(["warm-up"])
            self._archive_encoders[model_id] = encoder
        tiles = sum(tile_count(m.path) for m in members)
        key = tuple(os.path.abspath(p) for p in paths)
        held = self._archives.pop(key, None)
        if held is not None:
            held.close()
        self._indexes.pop(key, None)
        if tiles <= HELD_ARCHIVE_TILES:
            self._archives[key] = OpenArchive(paths, encoder=self._archive_encoders[model_id])
        elif len(paths) == 1 and os.path.isdir(paths[0]) and importlib.util.find_spec("faiss") is not None:
            from rsgeo.archive_index import ArchiveIndex, find_index

            found = find_index(members, Path(paths[0]))
            if found is not None:
                self._indexes[key] = (found, ArchiveIndex.load(found))
        index = self._indexes.get(key)
        return {"results": len(members), "tiles": tiles, "model_id": model_id, "held": key in self._archives,
                "index": None if index is None else str(index[0]), "seconds": round(time.perf_counter() - start, 3)}

    def archive_query(self, request: dict[str, Any]) -> dict[str, Any]:
        import pyogrio

        from rsgeo.archive import query_archive
        from rsgeo.collection import open_collection

        paths = _strings(request.get("paths"), "paths")
        texts = _strings(request.get("text"), "text")
        output = request.get("output")
        if not isinstance(output, str) or not output:
            raise ValueError("'output' must be a file path")
        top_k = request.get("top_k", 20)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError("'top_k' must be a whole number of at least 1")
        threshold = None if request.get("threshold") is None else float(request["threshold"])
        start = time.perf_counter()
        key = tuple(os.path.abspath(p) for p in paths)
        held = self._archives.get(key)
        used = None
        if held is not None:
            held.refresh()  # results added, changed or removed since are seen
            out = held.query(texts, output, top_k=top_k, threshold=threshold, overwrite=True)
        else:
            members = open_collection(paths)
            model_id = str(members[0].model.get("model_id"))
            if model_id not in self._archive_encoders:
                self.open_archive(request)
                return self.archive_query(request)
            index = self._indexes.get(key)
            if index is not None and (reason := index[1].stale_reason(members)) is not None:
                logger.warning("the archive index %s is stale (%s): searching exactly", index[0], reason)
                del self._indexes[key]
                index = None
            used = None if index is None else index[0]
            out = query_archive(paths, texts, output, top_k=top_k, overwrite=True, threshold=threshold,
                                encoder=self._archive_encoders[model_id], index=None if index is None else index[1])
        layers = [name for name, _ in pyogrio.list_layers(out) if str(name).startswith("query_")]
        count = sum(int(pyogrio.read_info(out, layer=name)["features"]) for name in layers)
        return {"output": str(out), "layers": layers, "count": count, "index": None if used is None else str(used),
                "seconds": round(time.perf_counter() - start, 3)}

    def close(self, request: dict[str, Any]) -> dict[str, Any]:
        path = request.get("path")
        if isinstance(path, str):
            key = os.path.abspath(path)
            self._results.pop(key, None)
            self._searches = {k: v for k, v in self._searches.items() if k[0] != key}
        return {}

    def search(self, request: dict[str, Any]) -> dict[str, Any]:
        from rsgeo.feedback import SearchSession

        result = self._result(request)
        texts = tuple(_strings(request.get("text"), "text"))
        key = (str(result.path.resolve()), texts)
        session = self._searches.get(key)
        if session is None:  # the text is encoded and the background drawn once per search
            prior = None
            if texts:
                t = result.text_embeddings(list(texts)).mean(axis=0)
                prior = t / max(float(np.linalg.norm(t)), 1e-12)
            session = SearchSession(result.index, prior, scale=float(result.encoder.logit_scale))
            self._searches[key] = session
        start = time.perf_counter()
        session.yes.clear()
        session.no.clear()
        session.label(_ints(request.get("yes"), "yes"), True)
        session.label(_ints(request.get("no"), "no"), False)
        session.refit()
        top_k = request.get("top_k")
        ids, sims = session.ranking(top_k=None if top_k is None else int(top_k))
        seconds = time.perf_counter() - start
        candidates = session.candidates(int(request.get("candidates") or 20))
        return {
            "count": int(len(ids)), "tile_id": _b64(ids, "int64"), "similarity": _b64(sims, "float32"),
            "candidates": _b64(candidates, "int64"), "seconds": round(seconds, 4),
            "yes": len(session.yes), "no": len(session.no),
        }

    def save_labels(self, request: dict[str, Any]) -> dict[str, Any]:
        from rsgeo.answers import labels_plan
        from rsgeo.pipeline import write_stored_plans
        from rsgeo.questions import check_layer_name

        result = self._result(request)
        layer = request.get("layer")
        if not isinstance(layer, str):
            raise ValueError("the request has no 'layer'")
        yes, no = set(_ints(request.get("yes"), "yes")), set(_ints(request.get("no"), "no"))
        ids = sorted(yes | no)
        values = ["yes" if t in yes else "no" for t in ids]
        plan = labels_plan(result.grid, name=check_layer_name(layer), tile_ids=np.asarray(ids, np.int64), values=values,
                           meta={"source": "QGIS dock"})
        target = request.get("target") or str(result.path)
        if not os.path.exists(target):
            import shutil

            shutil.copyfile(result.path, target)  # a copy of the result, to hold the labels
        out = write_stored_plans(Path(target), None, [plan])
        return {"path": str(out), "layer": layer, "count": len(ids)}

    def load_labels(self, request: dict[str, Any]) -> dict[str, Any]:
        from rsgeo.feedback import split_yes_no
        from rsgeo.labels import read_labels

        result = self._result(request)
        labels = request.get("labels")
        field = request.get("field")
        if not isinstance(labels, str) or not isinstance(field, str):
            raise ValueError("the request needs 'labels' (a file) and 'field'")
        layer = request.get("layer")
        got = read_labels(labels, result.grid, field=field, layer=layer if isinstance(layer, str) else None,
                          stored=result.index.tile_ids)
        yes, no = split_yes_no(got.tile_ids.tolist(), got.as_yes_no())
        return {"yes": yes, "no": no}


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
