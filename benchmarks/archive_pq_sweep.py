"""Exploration (issue 21): which FAISS IVF-PQ variant reaches recall@50 >= 0.95 for random unit queries at 10^6.

    python benchmarks/archive_pq_sweep.py 1000000 "IVF1024,PQ64;IVF1024,PQ128"

The synthetic archive of benchmarks/archive.py (the low-rank mixture, float16), in memory; 20 random
unit queries (text-like: far from every tile); the exact top 50 by brute force; each factory string
(';'-separated) trained on a uniform sample, then for 128 and 256 probed cells and K candidates,
the candidates re-scored exactly and the top 50 compared. Prints one line per setting. Results:
benchmarks/results/archive-2026-12-04-1e6-pq-sweep.txt (earlier versions of this script swept other
nprobe values; each log says which it ran).
"""
import sys, time, math
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.synthetic_result import cluster_centres, cluster_bases
import faiss

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
dim, clusters, rank, spread, noise = 512, 1024, 32, 0.75, 0.2
t = time.time()
centres = cluster_centres(clusters, dim); bases = cluster_bases(clusters, dim, rank)
X = np.empty((N, dim), np.float16)
CH = 65536
for scene in range((N + 999_999) // 1_000_000):
    rng = np.random.default_rng(scene)
    n_sc = min(1_000_000, N - scene * 1_000_000)
    for start in range(0, n_sc, CH):
        k = min(CH, n_sc - start)
        emb = rng.standard_normal((k, dim), dtype=np.float32)
        which = rng.integers(0, clusters, k)
        emb = centres[which] + emb * np.float32(noise / math.sqrt(dim))
        z = rng.standard_normal((k, rank), dtype=np.float32) * np.float32(spread / math.sqrt(rank))
        order = np.argsort(which, kind="stable"); edges = np.searchsorted(which[order], np.arange(clusters + 1))
        for c in range(clusters):
            rows = order[edges[c]:edges[c + 1]]; emb[rows] += z[rows] @ bases[c]
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        X[scene * 1_000_000 + start: scene * 1_000_000 + start + k] = emb
print("gen", time.time() - t, flush=True)
rng = np.random.default_rng(123)
Q = rng.standard_normal((20, dim)).astype(np.float32); Q /= np.linalg.norm(Q, axis=1, keepdims=True)
t = time.time()
S = np.empty((len(Q), N), np.float32)
for s in range(0, N, 262144):
    S[:, s:s + 262144] = Q @ X[s:s + 262144].astype(np.float32).T
truth = np.argpartition(-S, 50, axis=1)[:, :50]
print("exact", time.time() - t, flush=True)

def recall(I):
    return float(np.mean([len(set(truth[i].tolist()) & set(I[i].tolist())) / 50 for i in range(len(Q))]))

nlist = int(2 ** np.floor(np.log2(np.sqrt(N))))
rs = np.random.default_rng(0)
train = X[rs.choice(N, min(N, max(40 * nlist, 200_000)), replace=False)].astype(np.float32)
faiss.omp_set_num_threads(2)
for fac in sys.argv[2].split(";"):
    t = time.time()
    metric = faiss.METRIC_L2 if "+" in fac else faiss.METRIC_INNER_PRODUCT
    ix = faiss.index_factory(dim, fac, metric)
    try: faiss.extract_index_ivf(ix).do_polysemous_training = False
    except Exception: pass
    try: ix.do_polysemous_training = False
    except Exception: pass
    ix.train(train); tt = time.time() - t
    for s in range(0, N, CH):
        ix.add(X[s:s + CH].astype(np.float32))
    print(f"{fac}: train {tt:.0f}s add {time.time()-t-tt:.0f}s bytes/vec {faiss.serialize_index(ix).size / N:.1f}", flush=True)
    ivf = faiss.extract_index_ivf(ix)
    for nprobe in (128, 256):
        ivf.nprobe = nprobe
        for kf in ((1, 16, 32) if ("Refine" in fac or "+" in fac) else (1,)):
            if "Refine" in fac: faiss.downcast_index(ix).k_factor = kf
            elif "+" in fac: faiss.downcast_index(ix).k_factor = kf
            elif kf > 1 and not hasattr(ix, "k_factor"):
                if kf != 16: continue
            for K in (500, 1000, 2000, 4000, 8000):
                if K > 500 and kf > 1: continue
                t = time.time(); D, I = ix.search(Q, K); dt = (time.time() - t) / len(Q) * 1e3
                # exact rescore of candidates, top 50
                best = []
                for i in range(len(Q)):
                    c = I[i][I[i] >= 0]; sc = X[c].astype(np.float32) @ Q[i]
                    best.append(c[np.argsort(-sc)[:50]])
                print(f"  nprobe {nprobe} kf {kf} K {K}: recall {recall(best):.3f} {dt:.1f} ms/q", flush=True)
