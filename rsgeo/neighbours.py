"""k-nearest-neighbour graphs of embeddings in O(N·k) memory (for :mod:`rsgeo.transductive`).

Two methods, both by blocks of matrix products so that no N×N matrix is ever
held:

``exact``
    every row against every row, a block of rows at a time (``O(N²·D)`` work);
    used up to :data:`EXACT_UP_TO` rows.
``ivf``
    an inverted file: the rows are projected on the leading eigenvectors of
    their second moment, cut into about ``√N`` cells by spherical k-means, and each
    cell's rows are compared with the rows of the ``probe`` cells whose
    centroids are nearest its own (``O(N·probe·N/cells·d)`` work); the best
    ``4k`` candidates of each row are re-ranked in the full dimension. Neighbours a
    row has outside those cells are missed: the graph is approximate, which the
    Laplacian term tolerates (it only asks neighbours to agree).

Both return, per row, the ``k`` most cosine-similar other rows and their
similarity computed in the full dimension.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Up to this many rows the graph is exact (blocked brute force).
EXACT_UP_TO = 20_000
#: Floats of one block of similarities (64 MB of float32).
BLOCK_FLOATS = 1 << 24
#: Dimension the rows are projected to for the ``ivf`` search.
SEARCH_DIM = 64
#: Candidates per row found in the projection (times ``k``), re-ranked by the full-dimension cosine.
RERANK = 4


@dataclass(frozen=True)
class KnnGraph:
    """``neighbours[i]``: the ``k`` rows nearest row ``i`` (not ``i``), ``similarity[i]`` their cosines."""

    neighbours: np.ndarray
    similarity: np.ndarray
    method: str

    @property
    def k(self) -> int:
        return int(self.neighbours.shape[1])


def knn_graph(x: np.ndarray, k: int, *, method: str = "auto", probe: int = 8, seed: int = 0) -> KnnGraph:
    """The k-NN graph of the rows of ``x`` (float32, unit rows) by cosine similarity."""
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return KnnGraph(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), "none")
    if method == "auto":
        method = "exact" if n <= EXACT_UP_TO else "ivf"
    if method == "exact":
        nb = _exact(x, x, k, np.arange(n))
    elif method == "ivf":
        nb = _ivf(x, k, probe=probe, seed=seed)
    else:
        raise ValueError(f"unknown k-NN method {method!r}; use auto, exact or ivf")
    return KnnGraph(nb, _pair_similarity(x, nb), method)


def _exact(queries: np.ndarray, base: np.ndarray, k: int, self_index: np.ndarray) -> np.ndarray:
    """Top-``k`` rows of ``base`` for each query, leaving out ``base[self_index[q]]``."""
    out = np.empty((len(queries), k), np.int64)
    step = max(1, BLOCK_FLOATS // max(1, len(base)))
    for s in range(0, len(queries), step):
        sims = queries[s : s + step] @ base.T
        rows = np.arange(len(sims))
        sims[rows, self_index[s : s + step]] = -np.inf
        out[s : s + step] = _top(sims, k)
    return out


def _top(sims: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _project(x: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Rows on the ``dim`` leading eigenvectors of their second moment ``E[f fᵀ]`` (from a sample).

    Not centred: the rows' dot products (their cosines) are what is kept, and
    with them the common direction all embeddings of a scene share.
    """
    if x.shape[1] <= dim:
        return x
    sample = x[rng.choice(len(x), min(len(x), 8192), replace=False)]
    # Subspace iteration on the sample (a few thin products and QRs): a full eigendecomposition of the
    # D x D moment matrix costs as much as the whole search on a busy machine.
    basis = np.linalg.qr(rng.standard_normal((x.shape[1], dim + 8)).astype(np.float32))[0]
    for _ in range(3):
        basis = np.linalg.qr(sample.T @ (sample @ basis))[0]
    small = basis.T @ (sample.T @ (sample @ basis))
    _, vecs = np.linalg.eigh(small.astype(np.float64))
    basis = np.ascontiguousarray((basis @ vecs[:, ::-1][:, :dim].astype(np.float32)), np.float32)
    out = np.empty((len(x), dim), np.float32)
    step = 65536
    for s in range(0, len(x), step):
        out[s : s + step] = x[s : s + step] @ basis
    return out


def _spherical_kmeans(x: np.ndarray, cells: int, rng: np.random.Generator, iterations: int = 8) -> np.ndarray:
    sample = x[rng.choice(len(x), min(len(x), 64 * cells), replace=False)]
    centroids = sample[rng.choice(len(sample), cells, replace=False)].copy()
    for _ in range(iterations):
        assign = _nearest(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, sample)
        empty = np.linalg.norm(sums, axis=1) == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return centroids


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    out = np.empty(len(x), np.int64)
    step = max(1, BLOCK_FLOATS // len(centroids))
    for s in range(0, len(x), step):
        out[s : s + step] = np.argmax(x[s : s + step] @ centroids.T, axis=1)
    return out


def _ivf(x: np.ndarray, k: int, *, probe: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(x)
    y = _project(x, SEARCH_DIM, rng)
    cells = max(1, int(math.sqrt(n)))
    centroids = _spherical_kmeans(y, cells, rng)
    assign = _nearest(y, centroids)
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(cells + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(cells)]
    probe = min(probe, cells)
    near_cells = _top(centroids @ centroids.T, probe) if probe < cells else np.tile(np.arange(cells), (cells, 1))
    out = np.empty((n, k), np.int64)
    for c in range(cells):
        queries = members[c]
        if len(queries) == 0:
            continue
        cand = np.concatenate([members[j] for j in near_cells[c]])
        if len(cand) <= k:  # too few candidates near this cell: search all rows
            cand = np.arange(n)
        position = np.full(n, -1, np.int64)  # where each query sits among the candidates (to leave itself out)
        position[cand] = np.arange(len(cand))
        wide = min(RERANK * k, len(cand) - 1)  # candidates from the projection, re-ranked in full dimension
        found = cand[_exact(y[queries], y[cand], wide, position[queries].clip(0))]
        full = np.einsum("id,ikd->ik", x[queries], x[found])
        out[queries] = np.take_along_axis(found, _top(full, k), axis=1)
    logger.debug("ivf k-NN: %d rows, %d cells, probe %d", n, cells, probe)
    return out


def _pair_similarity(x: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Cosine of each row with each of its neighbours, in the full dimension, by blocks."""
    out = np.empty(neighbours.shape, np.float32)
    step = max(1, BLOCK_FLOATS // max(1, neighbours.shape[1] * x.shape[1]))
    for s in range(0, len(x), step):
        nb = neighbours[s : s + step]
        out[s : s + step] = np.einsum("id,ikd->ik", x[s : s + step], x[nb])
    return out
