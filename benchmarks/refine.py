"""Benchmark: transductive refinement, probes and label-and-refine search (issue 14, docs/refine.md).

On seeded synthetic embeddings (tests/synthetic.py: N unit chips of dimension
D in K classes of which some are absent, text prototypes offset from the
class means) it measures, in this one process:

* ``refine``: seconds (k-NN graph / EM iterations) and the process's peak RSS,
  zero-shot vs refined top-1 accuracy, and the share of chips left on absent
  classes;
* the search refit of the QGIS dock: after one more yes/no click on an index
  of N tiles, refit + re-rank of all N (median of 5 clicks);
* the probe with 5 labels per class on a separable task.

    python benchmarks/refine.py [--tiles 100000] [--dim 512] [--classes 10] [--present 6] [--json OUT]

Peak RSS is the whole process (embeddings, zero-shot scores and all), read
from ``getrusage`` at the end; ``rss_before`` is what the data alone held.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.query_speed import rss_mb  # noqa: E402
from tests.synthetic import synthetic  # noqa: E402


def cpu() -> str:
    model, flags = "", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [f for f in line.split(":", 1)[1].split() if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")]
    return f"{model} ({' '.join(flags)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--present", type=int, default=6)
    ap.add_argument("--offset", type=float, default=4.0)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from rsgeo.feedback import SearchSession
    from rsgeo.probe import fit_probe
    from rsgeo.results import EmbeddingIndex
    from rsgeo.transductive import RefineParams, refine_scores

    load_start = os.getloadavg()
    out: dict[str, object] = {"tiles": args.tiles, "dim": args.dim, "classes": args.classes, "present": args.present,
                              "cpu": cpu(), "cores": os.cpu_count()}
    data = synthetic(n=args.tiles, d=args.dim, k=args.classes, present=args.present, offset=args.offset,
                     noise=args.noise, seed=args.seed)
    out["rss_before_mb"] = round(rss_mb())
    absent = np.arange(args.present, args.classes)
    start = time.perf_counter()
    refined = refine_scores(data.x, data.probs, RefineParams())
    seconds = time.perf_counter() - start
    pred = refined.scores.argmax(1)
    out["refine"] = {
        "seconds": round(seconds, 2), **{f"{k}_s": round(v, 2) for k, v in refined.seconds.items()},
        "knn_method": refined.knn_method,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "zero_shot_accuracy": round(data.zero_shot_accuracy(), 4),
        "refined_accuracy": round(float(np.mean(pred == data.truth)), 4),
        "zero_shot_absent_share": round(float(np.mean(np.isin(data.probs.argmax(1), absent))), 4),
        "refined_absent_share": round(float(np.mean(np.isin(pred, absent))), 4),
        "removed_classes": refined.removed,
    }
    print(json.dumps(out["refine"]), flush=True)

    if not args.skip_search:
        index = EmbeddingIndex(np.arange(args.tiles, dtype=np.int64), data.x)
        session = SearchSession(index, data.prototypes[0], scale=data.scale)
        rng = np.random.default_rng(0)
        clicks = []
        for _ in range(5):
            tile = int(rng.integers(args.tiles))
            start = time.perf_counter()
            session.label([tile], bool(data.truth[tile] == 0))
            session.refit()
            ids, _ = session.ranking()
            clicks.append(time.perf_counter() - start)
        out["search_click"] = {"median_s": round(statistics.median(clicks), 3), "max_s": round(max(clicks), 3),
                               "ranked": int(len(ids)), "labels": len(session.yes) + len(session.no)}
        print(json.dumps(out["search_click"]), flush=True)

        sep = synthetic(n=3000, d=args.dim, k=10, present=10, offset=3.0, noise=1.5, seed=6)
        idx = np.concatenate([np.nonzero(sep.truth == k)[0][:5] for k in range(10)])
        rest = np.setdiff1d(np.arange(len(sep.truth)), idx)
        probe = fit_probe(sep.x[idx], sep.truth[idx], sep.prototypes, scale=sep.scale)
        out["probe_5_per_class"] = {"zero_shot_accuracy": round(sep.zero_shot_accuracy(), 4),
                                    "probe_accuracy": round(float(np.mean(probe.predict(sep.x[rest]) == sep.truth[rest])), 4)}
        print(json.dumps(out["probe_5_per_class"]), flush=True)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["loadavg_start"] = [round(v, 2) for v in load_start]
    out["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
