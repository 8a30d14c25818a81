"""Benchmark: one text query over an archive of many results, exact and with the index (issue 21).

Builds (or reuses, see ``--tmp``) a synthetic archive: ``--scenes`` real result
GeoPackages of ``--tiles-per-scene`` tiles each (:func:`benchmarks.synthetic_result.build_result`),
whose ``--dim``-d embeddings (stored as ``--dtype``) are a **gaussian mixture**:
every tile is one of ``--clusters`` shared random unit centres plus a variation
of norm about ``--spread`` within a random ``--rank``-dimensional subspace of its
own cluster, plus isotropic noise of norm ``--noise`` (defaults 1024, 0.75, 32,
0.2: a tile has cosine ≈ 0.79 with its centre, ≈ 0.14 with the next one), as
real embeddings cluster by land cover and vary along few directions within
one. ``--rank 0`` makes the variation isotropic in every dimension (the harder
case for product quantization). On iid noise an IVF-PQ index's recall means
nothing (no structure to exploit, every neighbour nearly equally far).

Then it measures, through the code ``rsgeo query RESULTS... --index FILE`` runs
(:mod:`rsgeo.archive`, :mod:`rsgeo.archive_index`), with the text tower of a
seeded random-weights ViT-B-32 (as ``benchmarks/query_speed.py``):

* **index**: build time (``ArchiveIndex.build``, its two streaming passes and
  the FAISS training) and the file's size, in a process of its own;
* **query** (a fresh process, so the build's memory does not count): index
  load time (``open_index``: read + staleness check), then per repeat a new
  text: encode + :func:`rsgeo.archive.search_index` (candidates, exact
  re-scoring from the stored embeddings, top 50), median and p90; and the whole
  ``query_archive`` call writing the answer GeoPackage (which loads the index
  again each time); peak RSS of that process (``ru_maxrss``);
* **recall@50** of the index against :func:`rsgeo.archive.exact_search` (the
  exact path ``rsgeo query`` takes without ``--index``), for the texts and for
  as many vectors drawn as the tiles are (a text that lands among the tiles it
  describes: the random text tower's vectors are unrelated to the synthetic
  clusters);
* **exact**: one new text answered by ``query_archive`` without an index (the
  result check, a streamed scan of every embedding, the answer written), on the
  first ``--exact-tiles`` tiles' worth of scenes (default: 10^6).

Figures are printed and written as JSON (default ``benchmarks/results/archive-<date>.json``).

    python benchmarks/archive.py --scenes 10 --tiles-per-scene 1000000 --dtype float16 --tmp /work/bench-tmp/arch-lr

``--tmp`` keeps the archive for later runs of the same shape (also the first
``--scenes`` results of a larger one); ``--reuse-index`` keeps its index too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from query_speed import rss_mb  # noqa: E402  (the same reading of /proc/self/status)

MANIFEST = "archive-manifest.json"
K = 50
#: The model the archive records: the architecture whose seeded random text tower asks it.
MODEL_ID = "arch:ViT-B-32"


def scene_paths(folder: Path, scenes: int) -> list[Path]:
    return [folder / f"scene{i:03d}.gpkg" for i in range(scenes)]


def index_path(folder: Path, scenes: int) -> Path:
    """The index of the first ``scenes`` results (one per archive size, so runs of several sizes share a folder)."""
    return folder / f"archive-{scenes}.rsgeo-index"


def build_archive(folder: Path, *, scenes: int, tiles: int, dim: int, dtype: str, clusters: int,
                  spread: float, rank: int, noise: float) -> dict[str, Any]:
    """The archive's results in ``folder``, built unless a manifest says the same ones are there."""
    from benchmarks.synthetic_result import build_result

    want = {"scenes": scenes, "tiles_per_scene": tiles, "dim": dim, "dtype": dtype, "clusters": clusters,
            "spread": spread, "rank": rank, "noise": noise}
    manifest = folder / MANIFEST
    folder.mkdir(parents=True, exist_ok=True)
    if manifest.is_file():  # the first ``scenes`` results of an archive of as many or more, same shape
        have = json.loads(manifest.read_text())
        same = all(have.get(k) == v for k, v in want.items() if k != "scenes")
        if same and have["scenes"] >= scenes and all(p.is_file() for p in scene_paths(folder, scenes)):
            print(f"reusing {scenes} of the {have['scenes']} results in {folder} (built in {have['build_s']} s)",
                  file=sys.stderr)
            per_scene = have["build_s"] / have["scenes"]
            return {**have, "scenes": scenes, "build_s": round(per_scene * scenes, 1),
                    "bytes": sum(p.stat().st_size for p in scene_paths(folder, scenes))}
        manifest.unlink()
    t0 = time.perf_counter()
    for seed, path in enumerate(scene_paths(folder, scenes)):
        t = time.perf_counter()
        build_result(path, tiles, dim=dim, seed=seed, clusters=clusters, spread=spread, rank=rank, noise=noise,
                     dtype=dtype,
                     model={"model_id": MODEL_ID, "weights_sha256": None, "embedding_dim": dim})
        print(f"  {path.name}: {tiles} tiles in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    have = {**want, "build_s": round(time.perf_counter() - t0, 1),
            "bytes": sum(p.stat().st_size for p in scene_paths(folder, scenes))}
    manifest.write_text(json.dumps(have, indent=2))
    return have


# -- measuring (each phase in a process of its own) ---------------------------------------------


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ms_stats(times: list[float]) -> dict[str, float]:
    """Median and 90th percentile (nearest rank) of milliseconds."""
    s = sorted(times)
    p90 = s[min(len(s) - 1, int(np.ceil(0.9 * len(s))) - 1)]
    return {"median": round(statistics.median(s), 1), "p90": round(p90, 1)}


def new_texts(prefix: str) -> Any:
    """A text never asked before, each call (the text tower runs in every timed query)."""
    words = ("solar farm", "flooded fields", "greenhouses")
    return iter(f"{w} number {k} {prefix}" for k in range(10**6) for w in words)


def text_encoder() -> Any:
    """ViT-B-32's text tower with seeded random weights (``benchmarks/query_speed.py``'s)."""
    import torch

    from rsgeo.encoders.openclip import OpenClipEncoder

    torch.manual_seed(0)
    encoder = OpenClipEncoder.from_name("ViT-B-32", device="cpu", model_id=MODEL_ID)
    encoder.encode_texts(["warm-up"])
    return encoder


def phase_build_index(args: argparse.Namespace) -> dict[str, Any]:
    """``open_index`` on a missing file: the build (two streaming passes, training) and the save."""
    import logging
    import re

    from rsgeo.archive_index import open_index
    from rsgeo.collection import open_collection

    trained: list[float] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            m = re.search(r"trained .* in ([0-9.]+) s", record.getMessage())
            if m:
                trained.append(float(m.group(1)))

    logging.getLogger("rsgeo.archive_index").addHandler(Catch())
    logging.getLogger("rsgeo.archive_index").setLevel(logging.INFO)
    path = index_path(Path(args.tmp), args.scenes)
    path.unlink(missing_ok=True)
    members = open_collection(scene_paths(Path(args.tmp), args.scenes))
    t0 = time.perf_counter()
    index = open_index(members, path)
    build_s = time.perf_counter() - t0
    return {"index_build_s": round(build_s, 1), "index_train_s": trained[0] if trained else None,
            "index_file_mb": round(path.stat().st_size / 2**20, 1), "index_vectors": len(index),
            "index_params": dict(index.params.__dict__), "index_build_peak_rss_mb": round(peak_mb(), 1)}


def centre_queries(n: int, args: argparse.Namespace, seed: int = 99) -> np.ndarray:
    """Unit vectors drawn as the archive's tiles are (a centre plus its variation): queries among their tiles."""
    from benchmarks.synthetic_result import cluster_bases, cluster_centres

    rng = np.random.default_rng(seed)
    centres = cluster_centres(args.clusters, args.dim)
    which = rng.integers(0, args.clusters, n)
    if args.rank > 0:
        bases = cluster_bases(args.clusters, args.dim, args.rank)
        z = rng.standard_normal((n, args.rank)).astype(np.float32) * np.float32(args.spread / np.sqrt(args.rank))
        q = centres[which] + np.einsum("nr,nrd->nd", z, bases[which]) + rng.standard_normal(
            (n, args.dim)).astype(np.float32) * np.float32(args.noise / np.sqrt(args.dim))
    else:
        q = centres[which] + rng.standard_normal((n, args.dim)).astype(np.float32) * np.float32(
            args.spread / np.sqrt(args.dim))
    out: np.ndarray = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    return out


def recall(exact: list[Any], approx: list[Any]) -> list[float]:
    out = []
    for e, a in zip(exact, approx):
        truth = set(zip(e.member.tolist(), e.tile_ids.tolist()))
        out.append(len(truth & set(zip(a.member.tolist(), a.tile_ids.tolist()))) / max(1, len(truth)))
    return out


def phase_query(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh process: load the index, ask new texts, then recall against the exact path."""
    from rsgeo.answers import QuerySpec
    from rsgeo.archive import exact_search, query_archive, query_specs, search_index, text_vectors
    from rsgeo.archive_index import open_index
    from rsgeo.collection import open_collection

    tmp = Path(args.tmp)
    paths = scene_paths(tmp, args.scenes)
    path = index_path(tmp, args.scenes)
    encoder = text_encoder()
    rss_start = rss_mb()
    members = open_collection(paths)
    t0 = time.perf_counter()
    index = open_index(members, path)  # read, then checked against the results (not stale)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()

    texts = new_texts("index")
    encode_ms, search_ms, total_ms, asked = [], [], [], []
    search_index(index, members, query_specs(["warm-up"], top_k=K, threshold=None),
                 text_vectors(encoder, query_specs(["warm-up"], top_k=K, threshold=None)))
    for _ in range(args.repeats):
        text = next(texts)
        t = time.perf_counter()
        specs = query_specs([text], top_k=K, threshold=None)
        vectors = text_vectors(encoder, specs)
        t1 = time.perf_counter()
        search_index(index, members, specs, vectors)
        t2 = time.perf_counter()
        encode_ms.append((t1 - t) * 1000)
        search_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t) * 1000)
        asked.append(text)
    peak_querying = peak_mb()
    rss_querying = rss_mb()
    # The text tower alone with one torch thread: on a shared 2-core machine two threads wait on each other.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one_thread_ms = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        text_vectors(encoder, query_specs([next(texts)], top_k=K, threshold=None))
        one_thread_ms.append((time.perf_counter() - t) * 1000)
    torch.set_num_threads(threads)

    # The whole command's path: query_archive reads and checks the index again, and writes the answer.
    full_ms = []
    for i in range(1 + min(3, args.repeats)):  # the first warms up (GeoPandas, pyogrio imported on first use)
        t = time.perf_counter()
        query_archive(paths, [next(texts)], tmp / "answer.gpkg", top_k=K, encoder=encoder, index=path,
                      exact_below=0, overwrite=True)
        if i:
            full_ms.append((time.perf_counter() - t) * 1000)

    # Recall@50 against the exact path, for the texts asked and for as many queries among the tiles.
    text_specs = query_specs(asked, top_k=K, threshold=None)
    text_vecs = text_vectors(encoder, text_specs)
    near_vecs = centre_queries(args.repeats, args)
    near_specs = [QuerySpec((f"near {i}",), top_k=K) for i in range(len(near_vecs))]
    specs = [*text_specs, *near_specs]
    vectors = np.concatenate([text_vecs, near_vecs])
    approx = search_index(index, members, specs, vectors)
    t = time.perf_counter()
    exact = exact_search(members, specs, vectors)  # one streamed pass answers every query
    exact_pass_s = time.perf_counter() - t
    r = recall(exact, approx)
    n_text = len(text_specs)
    return {
        "index_load_s": round(load_s, 2),
        "query_rss_start_mb": round(rss_start, 1), "query_rss_index_loaded_mb": round(rss_loaded, 1),
        "query_rss_after_queries_mb": round(rss_querying, 1),
        "query_peak_rss_mb": round(peak_querying, 1),
        "text_query_ms": ms_stats(total_ms), "text_encode_ms": ms_stats(encode_ms),
        "index_search_rescore_ms": ms_stats(search_ms),
        "torch_threads": threads, "text_encode_1_thread_ms": ms_stats(one_thread_ms),
        "query_archive_with_index_ms": ms_stats(full_ms),
        "recall_at_50_texts": {"mean": round(float(np.mean(r[:n_text])), 4),
                               "min": round(float(np.min(r[:n_text])), 4)},
        "recall_at_50_near_tiles": {"mean": round(float(np.mean(r[n_text:])), 4),
                                    "min": round(float(np.min(r[n_text:])), 4)},
        "recall_queries": len(r),
        "exact_pass_all_tiles_s": round(exact_pass_s, 1),
        "exact_pass_queries": len(specs),
    }


def phase_exact(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh process: new texts answered by ``query_archive`` without an index, on ``--exact-tiles`` tiles."""
    from rsgeo.archive import exact_search, query_archive, query_specs, text_vectors
    from rsgeo.collection import open_collection

    tmp = Path(args.tmp)
    k = max(1, min(args.scenes, -(-args.exact_tiles // args.tiles_per_scene)))
    paths = scene_paths(tmp, args.scenes)[:k]
    encoder = text_encoder()
    texts = new_texts("exact")
    full_ms, scan_ms = [], []
    query_archive(paths[:1], ["warm-up"], tmp / "answer-exact.gpkg", top_k=K, encoder=encoder, overwrite=True)
    for _ in range(args.exact_repeats):
        t = time.perf_counter()
        query_archive(paths, [next(texts)], tmp / "answer-exact.gpkg", top_k=K, encoder=encoder, overwrite=True)
        full_ms.append((time.perf_counter() - t) * 1000)
        members = open_collection(paths)
        specs = query_specs([next(texts)], top_k=K, threshold=None)
        vectors = text_vectors(encoder, specs)
        t = time.perf_counter()
        exact_search(members, specs, vectors)
        scan_ms.append((time.perf_counter() - t) * 1000)
    streamed_peak = peak_mb()
    # The same tiles held open (rsgeo.archive_open.OpenArchive, as the QGIS panel's worker holds an archive):
    # opened once, then each new text answered from memory.
    from rsgeo.archive_open import OpenArchive

    t = time.perf_counter()
    opened = OpenArchive(paths, encoder=encoder)
    open_s = time.perf_counter() - t
    opened.search(["warm-up"], top_k=K)
    held_ms, held_scan_ms = [], []
    for _ in range(max(args.exact_repeats, 5)):
        text = next(texts)
        t = time.perf_counter()
        opened.search([text], top_k=K)
        held_ms.append((time.perf_counter() - t) * 1000)
        vectors = text_vectors(encoder, query_specs([next(texts)], top_k=K, threshold=None))
        t = time.perf_counter()
        for result in opened._open.values():
            result[1].index.top_k(np.asarray(vectors[0], np.float32), K)
        held_scan_ms.append((time.perf_counter() - t) * 1000)
    opened.close()
    return {"exact_tiles": k * args.tiles_per_scene, "exact_scenes": k,
            "exact_query_archive_ms": ms_stats(full_ms), "exact_search_only_ms": ms_stats(scan_ms),
            "exact_peak_rss_mb": round(streamed_peak, 1),
            "held_archive_open_s": round(open_s, 2), "held_archive_text_query_ms": ms_stats(held_ms),
            "held_archive_scan_only_ms": ms_stats(held_scan_ms), "held_archive_peak_rss_mb": round(peak_mb(), 1)}


PHASES = {"build-index": phase_build_index, "query": phase_query, "exact": phase_exact}


def run_phase(name: str, argv: list[str], out: Path) -> dict[str, Any]:
    """Run one phase in a fresh interpreter (its memory is its own) and read its figures back."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--phase", name, "--phase-out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    print(f"phase {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return dict(json.loads(out.read_text()))


def machine() -> dict[str, Any]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)
    flags = sorted({f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16", "avx2", "avx512f") if f" {f}" in text})
    return {"cpu": model, "flags": flags, "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--tiles-per-scene", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--dtype", default="float16", choices=["float32", "float16"])
    ap.add_argument("--clusters", type=int, default=1024, help="centres of the gaussian mixture")
    ap.add_argument("--spread", type=float, default=0.75, help="norm of a tile's variation around its centre")
    ap.add_argument("--rank", type=int, default=32,
                    help="dimensions of each cluster's variation (0: isotropic in every dimension)")
    ap.add_argument("--noise", type=float, default=0.2, help="norm of the isotropic noise added (with --rank)")
    ap.add_argument("--repeats", type=int, default=20, help="new texts asked of the index")
    ap.add_argument("--exact-tiles", type=int, default=1_000_000, help="tiles (whole scenes) of the exact query")
    ap.add_argument("--exact-repeats", type=int, default=3, help="new texts asked exactly")
    ap.add_argument("--tmp", type=Path, default=None,
                    help="folder of the archive, kept and reused by later runs of the same shape "
                         "(default: a temporary folder, deleted)")
    ap.add_argument("--reuse-index", action="store_true",
                    help="keep the index of a previous run in --tmp (its build figures are that run's)")
    ap.add_argument("--json", type=Path, default=None,
                    help=f"where to write the figures (default: results/archive-{dt.date.today()}.json)")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase is not None:
        args.phase_out.write_text(json.dumps(PHASES[args.phase](args)))
        return 0

    load_before = os.getloadavg()
    own_tmp = args.tmp is None
    if own_tmp:
        args.tmp = Path(tempfile.mkdtemp(prefix="rsgeo-archive-", dir=os.environ.get("RSGEO_BENCH_TMP")))
    try:
        archive = build_archive(args.tmp, scenes=args.scenes, tiles=args.tiles_per_scene, dim=args.dim,
                                dtype=args.dtype, clusters=args.clusters, spread=args.spread, rank=args.rank,
                                noise=args.noise)
        child = ["--scenes", str(args.scenes), "--tiles-per-scene", str(args.tiles_per_scene), "--dim", str(args.dim),
                 "--dtype", args.dtype, "--clusters", str(args.clusters), "--spread", str(args.spread),
                 "--rank", str(args.rank), "--noise", str(args.noise),
                 "--repeats", str(args.repeats), "--exact-tiles", str(args.exact_tiles),
                 "--exact-repeats", str(args.exact_repeats), "--tmp", str(args.tmp)]
        figures: dict[str, Any] = {
            "tiles": args.scenes * args.tiles_per_scene, "scenes": args.scenes, "dim": args.dim, "dtype": args.dtype,
            "clusters": args.clusters, "spread": args.spread, "rank": args.rank, "noise": args.noise,
            "repeats": args.repeats,
            "archive_build_s": archive["build_s"], "archive_mb": round(archive["bytes"] / 2**20, 1),
        }
        saved = args.tmp / f"index-build-{args.scenes}.json"
        if args.reuse_index and saved.is_file() and index_path(args.tmp, args.scenes).is_file():
            figures.update(json.loads(saved.read_text()), index_reused=True)
        else:
            figures.update(run_phase("build-index", child, saved))
        figures.update(run_phase("query", child, args.tmp / "query.json"))
        figures.update(run_phase("exact", child, args.tmp / "exact.json"))
    finally:
        if own_tmp:
            shutil.rmtree(args.tmp, ignore_errors=True)
    figures["machine"] = {**machine(), "load_average_before": list(load_before)}
    figures["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    figures["targets"] = {
        "index_text_query_le_200ms": figures["text_query_ms"]["median"] <= 200,
        "recall_at_50_ge_0.95": figures["recall_at_50_near_tiles"]["mean"] >= 0.95
        and figures["recall_at_50_texts"]["mean"] >= 0.95,
        "query_peak_rss_le_4GB": figures["query_peak_rss_mb"] <= 4096,
        "exact_text_query_le_1s": figures["exact_query_archive_ms"]["median"] <= 1000,
        "held_exact_text_query_le_1s": figures["held_archive_text_query_ms"]["median"] <= 1000,
        "at_1e7_tiles": figures["tiles"] >= 10**7,
    }
    for key, value in figures.items():
        print(f"{key:<34}{json.dumps(value)}")
    out = args.json or HERE / "results" / f"archive-{dt.date.today()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
