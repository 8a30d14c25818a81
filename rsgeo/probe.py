"""Linear probes on stored embeddings, pulled toward the zero-shot text classifier.

A probe is multinomial logistic regression on unit image embeddings ``x``,
``logits = s · x Wᵀ + b``, with ``s`` the model's logit scale. Its weights start
at, and are regularised toward, the text classifier ``W₀`` (one unit text
embedding per class, the zero-shot classifier; zeros for a class without text)::

    loss(W, b) = Σ_i c_i CE(softmax(logits_i), y_i) / Σ_i c_i  +  (reg / 2) ‖W − W₀‖²

With no labels the minimum is the zero-shot classifier itself; two labels a
class move it only as far as they justify, which is why a handful of labels
already help (the same idea as regularising a linear probe toward the text
weights, e.g. the "LP++" and "CLAP" lines of few-shot CLIP work). Fitted by
L-BFGS written here in NumPy (no SciPy, no torch: it runs in QGIS's Python),
``c_i`` are per-label weights (background negatives count less).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rsgeo.scoring import softmax_rows

#: Default strength of the pull toward the text classifier.
DEFAULT_REG = 0.05


@dataclass(frozen=True)
class Probe:
    """A fitted probe: weights ``(C, D)``, biases ``(C,)`` and the scale they were fitted at."""

    weights: np.ndarray
    bias: np.ndarray
    scale: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.scale * (np.asarray(x, np.float32) @ self.weights.T) + self.bias
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return softmax_rows(self.logits(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.argmax(self.logits(x), axis=1)
        return out


def fit_probe(x: np.ndarray, y: np.ndarray, prior: np.ndarray, *, scale: float, reg: float = DEFAULT_REG,
              sample_weight: np.ndarray | None = None, max_iter: int = 200) -> Probe:
    """Fit a probe on embeddings ``x`` ``(n, D)`` with class indices ``y``, pulled toward ``prior`` ``(C, D)``."""
    x = np.ascontiguousarray(x, np.float64)
    prior = np.asarray(prior, np.float64)
    c, d = prior.shape
    y = np.asarray(y, np.int64)
    cw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    cw = cw / max(cw.sum(), 1e-12)
    onehot = np.zeros((len(y), c))
    onehot[np.arange(len(y)), y] = 1.0

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: c * d].reshape(c, d)
        b = theta[c * d :]
        logits = scale * (x @ w.T) + b
        m = logits.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        p = np.exp(logits - logz[:, None])
        ce = float(np.sum(cw * (logz - np.sum(onehot * logits, axis=1))))
        delta = w - prior
        loss = ce + 0.5 * reg * float(np.sum(delta * delta)) + 0.5e-6 * float(b @ b)
        r = (p - onehot) * cw[:, None]
        gw = scale * (r.T @ x) + reg * delta
        gb = r.sum(axis=0) + 1e-6 * b
        return loss, np.concatenate([gw.ravel(), gb])

    theta0 = np.concatenate([prior.ravel(), np.zeros(c)])
    theta = _lbfgs(loss_grad, theta0, max_iter=max_iter)
    return Probe(theta[: c * d].reshape(c, d).astype(np.float32), theta[c * d :].astype(np.float32), float(scale))


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, prior: np.ndarray, *, scale: float,
                             reg: float = DEFAULT_REG, folds: int = 5, seed: int = 0) -> tuple[float, int] | None:
    """``(accuracy, folds)`` of stratified k-fold cross-validation, or ``None`` with under 2 labels in some class.

    Folds are ``min(folds, smallest class count)``; every label is predicted
    once, by a probe fitted without it.
    """
    y = np.asarray(y, np.int64)
    present = np.unique(y)
    counts = np.array([np.sum(y == k) for k in present])
    k_folds = int(min(folds, counts.min())) if len(counts) else 0
    if k_folds < 2:
        return None
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    for k in present:  # stratified: each class dealt round the folds in a shuffled order
        idx = np.nonzero(y == k)[0]
        fold[rng.permutation(idx)] = np.arange(len(idx)) % k_folds
    correct = 0
    for f in range(k_folds):
        test = fold == f
        probe = fit_probe(x[~test], y[~test], prior, scale=scale, reg=reg)
        correct += int(np.sum(probe.predict(x[test]) == y[test]))
    return correct / len(y), k_folds


def _lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], theta: np.ndarray, *, max_iter: int,
           memory: int = 10, tol: float = 1e-7) -> np.ndarray:
    """Minimise ``fun`` (value and gradient) by L-BFGS with a backtracking (Armijo) line search."""
    f, g = fun(theta)
    s_list: list[np.ndarray] = []
    y_list: list[np.ndarray] = []
    for _ in range(max_iter):
        if float(np.max(np.abs(g))) < tol:
            break
        q = g.copy()
        alphas = []
        for s, yv in zip(reversed(s_list), reversed(y_list)):
            a = float(s @ q) / float(yv @ s)
            alphas.append(a)
            q -= a * yv
        if s_list:
            q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, yv), a in zip(zip(s_list, y_list), reversed(alphas)):
            bcoef = float(yv @ q) / float(yv @ s)
            q += (a - bcoef) * s
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            s_list.clear()
            y_list.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0
        while True:
            new = theta + step * direction
            f_new, g_new = fun(new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = new - theta, g_new - g
        if float(s_vec @ y_vec) > 1e-12:
            s_list.append(s_vec)
            y_list.append(y_vec)
            if len(s_list) > memory:
                s_list.pop(0)
                y_list.pop(0)
        converged = abs(f - f_new) <= tol * max(1.0, abs(f))
        theta, f, g = new, f_new, g_new
        if converged:
            break
    return theta
