"""Benchmark: what the QGIS panel's worker does per new text over N stored embeddings (issue 13).

Times, in one process and one run, the two replies the worker can give the panel
for a new text (``rsgeo.worker.Worker.handle``, as the panel sends it):

* ``tiles``: every tile's id and similarity, base64 in one JSON line (what the
  panel received before, and still receives for results of up to
  ``search_map.MAP_TILES`` tiles, which it then copies into a memory layer);
* ``map``: the similarity raster written as a COG and the top 20 tiles
  (``query`` with ``raster``), which is all the panel handles for larger results.

Each new text is encoded (test encoder ``test:hash-512-224-0``: the text tower is
not what is measured; ``benchmarks/query_speed.py`` times real ones). The
main-thread stall in QGIS is measured by ``tests/qgis/test_dock_million.py``.

    python benchmarks/dock_answer.py [--result FILE.gpkg | --tiles 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--result", type=Path, default=None, help="a result to use (default: build a synthetic one)")
    ap.add_argument("--tiles", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic_result import build_result

    from rsgeo.worker import Worker

    with tempfile.TemporaryDirectory(dir=os.environ.get("RSGEO_BENCH_TMP")) as tmp:
        path = args.result
        if path is None:
            path = Path(tmp) / "synthetic.gpkg"
            build_result(path, args.tiles)
        worker = Worker()
        t0 = time.perf_counter()
        opened = worker.handle({"id": 0, "op": "open", "path": str(path)})
        assert opened["ok"], opened
        load_s = time.perf_counter() - t0
        texts = iter(f"{w} number {k}" for k in range(10**6) for w in ("solar farm", "flooded fields"))
        figures: dict[str, object] = {"tiles": opened["result"]["tiles"], "open_s": round(load_s, 2)}
        for kind in ("tiles", "map", "tiles", "map"):  # interleaved: the machine's load hits both alike
            times, sizes, steps = [], [], []
            for i in range(args.repeats):
                request = {"id": 1, "op": "query", "path": str(path), "text": [next(texts)]}
                if kind == "map":
                    request.update(raster=str(Path(tmp) / f"answer-{i}.tif"), top_k=20)
                t = time.perf_counter()
                reply = worker.handle(request)
                line = json.dumps(reply)
                times.append(time.perf_counter() - t)
                assert reply["ok"], reply
                sizes.append(len(line))
                if kind == "map":
                    steps.append(reply["result"]["seconds"])
            key = f"{kind}_ms"
            figures[key] = sorted(figures.get(key, []) + [round(1e3 * x, 1) for x in times])  # type: ignore[operator]
            figures[f"{kind}_reply_bytes"] = int(statistics.median(sizes))
            if steps:
                figures["map_steps_ms"] = {k: round(1e3 * statistics.median(s[k] for s in steps), 1) for k in steps[0]}
        for kind in ("tiles", "map"):
            figures[f"{kind}_median_ms"] = round(statistics.median(figures[f"{kind}_ms"]), 1)  # type: ignore[arg-type]
        figures["tiles_over_map"] = round(figures["tiles_median_ms"] / figures["map_median_ms"], 2)  # type: ignore[operator]
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
