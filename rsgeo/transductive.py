"""Transductive refinement of zero-shot class scores from the scene's own embeddings.

Written from the equations of TransCLIP (Zanella, Gérin and Ben Ayed, "Boosting
Vision-Language Models with Transduction", NeurIPS 2024) as applied to remote
sensing by RS-TransCLIP (Elkhoury et al., ICASSP 2025). With image embeddings
``f_i`` (unit rows) and the zero-shot text probabilities ``ŷ_i``, the soft
assignments ``z_i`` (rows on the simplex), the class means ``μ_k`` and one
shared diagonal covariance ``Σ`` minimise

    L(z, μ, Σ) = − Σ_i z_iᵀ log p_i  −  η Σ_ij w_ij z_iᵀ z_j  +  λ⁻¹ Σ_i KL(z_i ‖ ŷ_i)  (up to scale)

where ``p_ik ∝ π_k N(f_i; μ_k, Σ)`` is a Gaussian mixture, ``w_ij`` the
cosine affinity on a k-nearest-neighbour graph of the chips (zero elsewhere),
and the KL term keeps each chip's answer close to what the text said. Block
majorise-minimise steps alternate:

* ``z_i ∝ ŷ_i^λ ⊙ exp(log p_i + η Σ_j w_ij z_j)`` (the Laplacian term linearised
  at the current ``z``; a few such steps per outer iteration),
* ``μ_k = Σ_i z_ik f_i / Σ_i z_ik`` and ``Σ = diag(Σ_ik z_ik (f_i − μ_k)²) / N``.

Two departures from the published setting, both needed on a user's scene:

* **Absent classes.** The published method assumes every class occurs. Here
  the mixture has a weight per class, ``π_k = Σ_i z_ik / N``, re-estimated
  with the means; a class the scene does not hold loses its chips to the
  classes that explain them better, its weight shrinks, and once below
  ``min_weight`` it is removed (its scores become 0 and the other classes'
  are renormalised). Its weight is recorded, so a user sees which classes the
  scene was judged not to hold.
* **Memory.** ``w`` is a sparse k-NN graph (:mod:`rsgeo.neighbours`, blocked
  exact up to 20 000 chips, an inverted-file search above): O(N·k), never N×N.

Everything is NumPy (the matrix products are BLAS's); the same code runs in
QGIS's Python without torch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rsgeo.errors import OptionError
from rsgeo.scoring import softmax_rows
from rsgeo.neighbours import KnnGraph, knn_graph

logger = logging.getLogger(__name__)

METHOD = "rs-transclip"


@dataclass(frozen=True)
class RefineParams:
    """Parameters of :func:`refine_scores` (recorded in the layer's metadata)."""

    #: Neighbours per chip in the affinity graph.
    knn: int = 3
    #: ``λ``: weight of the text predictions (the exponent of ``ŷ``); 0 ignores the text after initialisation.
    text_weight: float = 1.0
    #: ``η``: weight of the Laplacian (neighbours agree) term.
    laplacian_weight: float = 3.0
    #: Outer iterations (means, covariance, class weights).
    iterations: int = 10
    #: ``z`` updates per outer iteration.
    z_steps: int = 5
    #: A class whose mixture weight falls below this is removed (scores 0).
    min_weight: float = 1e-3
    #: Chips per class whose text scores are highest initialise that class's mean.
    init_top: int = 8
    #: ``auto``, ``exact`` or ``ivf`` (:mod:`rsgeo.neighbours`).
    knn_method: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.knn < 0:
            raise OptionError(f"knn must be 0 or more, got {self.knn}")
        if self.iterations < 1 or self.z_steps < 1:
            raise OptionError("iterations must be at least 1")
        if self.text_weight < 0 or self.laplacian_weight < 0:
            raise OptionError("the text and Laplacian weights must not be negative")
        if not 0 <= self.min_weight < 1:
            raise OptionError(f"min_weight is a fraction of the chips in [0, 1), got {self.min_weight}")


@dataclass
class Refined:
    """Refined scores ``(N, K)`` and what the refinement found."""

    scores: np.ndarray
    #: Final mixture weight ``π_k`` of each class (0 for a removed class).
    class_weights: np.ndarray
    #: Classes removed as absent from the scene.
    removed: list[int]
    params: RefineParams
    knn_method: str
    seconds: dict[str, float] = field(default_factory=dict)

    def meta(self, class_names: list[str]) -> dict[str, Any]:
        return {
            "method": METHOD,
            "reference": "Elkhoury et al., RS-TransCLIP, ICASSP 2025; Zanella et al., TransCLIP, NeurIPS 2024",
            "params": asdict(self.params),
            "knn_method": self.knn_method,
            "class_weights": {c: round(float(w), 6) for c, w in zip(class_names, self.class_weights)},
            "removed_classes": [class_names[k] for k in self.removed],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def refine_scores(embeddings: np.ndarray, text_probs: np.ndarray, params: RefineParams = RefineParams(),
                  *, graph: KnnGraph | None = None) -> Refined:
    """Refine zero-shot probabilities ``text_probs`` ``(N, K)`` of chips with embeddings ``(N, D)``."""
    t0 = time.perf_counter()
    x = np.ascontiguousarray(embeddings, np.float32)
    n, k_classes = text_probs.shape
    if len(x) != n:
        raise ValueError(f"{len(x)} embeddings but {n} rows of scores")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    log_text = params.text_weight * np.log(np.clip(text_probs.astype(np.float32), 1e-12, None))
    if graph is None:
        graph = knn_graph(x, params.knn, method=params.knn_method, seed=params.seed)
    t_graph = time.perf_counter()
    w = np.maximum(graph.similarity, 0).astype(np.float32)  # affinities are non-negative

    alive = np.ones(k_classes, bool)
    mu, member = _initial_means(x, text_probs, params.init_top)
    mass = member.sum(axis=0)
    z = text_probs.astype(np.float32)
    sq = np.einsum("nd,nd->d", x, x)  # Σ_i f_i², for the covariance
    var = np.maximum(sq / n - (x.mean(axis=0) ** 2), 1e-6)
    weights = np.full(k_classes, 1.0 / k_classes, np.float32)
    for _ in range(params.iterations):
        base = log_text + _loo_loglik(x, mu, var, member, mass) + np.log(np.maximum(weights, 1e-30))
        base[:, ~alive] = -np.inf
        for _ in range(params.z_steps):
            logits = base + params.laplacian_weight * _affinity_times(graph.neighbours, w, z) if graph.k else base
            z = softmax_rows(logits)
        mass = z.sum(axis=0)
        weights = mass / n
        newly_gone = alive & (weights < params.min_weight)
        if newly_gone.any():
            alive &= ~newly_gone
            z[:, newly_gone] = 0
            z /= np.maximum(z.sum(axis=1, keepdims=True), 1e-30)
            mass = z.sum(axis=0)
            weights = mass / n
        keep = mass > 0
        mu[keep] = (x.T @ z).T[keep] / mass[keep, None]  # (x.T @ z): BLAS's fast layout for a thin z
        member = z
        var = np.maximum((sq - np.einsum("k,kd->d", mass, mu * mu)) / n, 1e-6)
    weights[~alive] = 0
    t_end = time.perf_counter()
    removed = [int(k) for k in np.nonzero(~alive)[0]]
    logger.info("refined %d chips, %d classes in %.1f s (graph %.1f s); removed as absent: %s",
                n, k_classes, t_end - t0, t_graph - t0, removed or "none")
    return Refined(z.astype(np.float32), weights.astype(np.float32), removed, params, graph.method,
                   {"graph": t_graph - t0, "iterations": t_end - t_graph})


def _initial_means(x: np.ndarray, text_probs: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class's mean, the average of the ``top`` chips the text scores highest for it, and those memberships."""
    top = max(1, min(top, len(x)))
    best = np.argpartition(-text_probs, top - 1, axis=0)[:top]  # (top, K)
    mu = x[best].mean(axis=0).astype(np.float32)  # (K, D)
    member = np.zeros(text_probs.shape, np.float32)
    member[best, np.arange(text_probs.shape[1])[None, :]] = 1.0
    return mu, member


def _loo_loglik(x: np.ndarray, mu: np.ndarray, var: np.ndarray, member: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """``log N(f_i; μ_k, Σ)`` (up to a constant), each chip judged by the mean of the *other* chips of the class.

    A class mean made from few chips lies close to those chips only because
    they made it (in 512 dimensions the advantage is about ``D / (2 n_k)``
    nats), which would let a class the scene does not hold keep a handful of
    chips for ever. Leaving chip ``i`` out of ``μ_k`` scales its residual by
    ``n_k / (n_k − z_ik)`` (exactly, for the weighted mean), so the squared
    distance is multiplied by that factor squared.
    """
    inv = 1.0 / var
    sq = (x * x) @ inv
    d2 = sq[:, None] - 2.0 * (x @ (mu * inv).T) + np.sum(mu * mu * inv, axis=1)[None, :]
    factor = mass[None, :] / np.maximum(mass[None, :] - member, 1e-3)
    out: np.ndarray = -0.5 * np.maximum(d2, 0) * factor * factor
    return out


def _affinity_times(neighbours: np.ndarray, w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``Σ_j w̄_ij z_j`` with the symmetrised graph ``w̄ = (w + wᵀ) / 2``, in O(N·k·K)."""
    forward = np.einsum("ik,ikc->ic", w, z[neighbours])
    n, k = neighbours.shape
    source = np.repeat(np.arange(n), k)
    target = neighbours.ravel()
    flat_w = w.ravel()
    backward = np.empty_like(z)
    for c in range(z.shape[1]):  # bincount: a fast scatter-add
        backward[:, c] = np.bincount(target, weights=flat_w * z[source, c], minlength=n)
    out: np.ndarray = 0.5 * (forward + backward)
    return out
