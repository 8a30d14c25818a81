"""Seeded synthetic embeddings where the truth is known (tests/test_refine.py, benchmarks/refine.py).

Class means are unit vectors sharing a common direction (CLIP image embeddings
of one scene are alike); chips are noisy copies of their class mean, on the
sphere; text prototypes are the class means moved along one shared "modality
gap" direction and by a random offset of their own, so zero-shot is wrong on a
share of the chips. Only the first ``present`` classes occur in the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Synthetic:
    x: np.ndarray  # (N, D) unit chips
    truth: np.ndarray  # (N,) class of each chip
    prototypes: np.ndarray  # (K, D) unit text prototypes
    probs: np.ndarray  # (N, K) zero-shot softmax at logit scale ``scale``
    present: np.ndarray
    scale: float

    def zero_shot_accuracy(self) -> float:
        return float(np.mean(self.probs.argmax(1) == self.truth))


def synthetic(n: int = 4000, d: int = 128, k: int = 10, present: int = 6, *, noise: float = 1.0, offset: float = 2.0,
              gap: float = 1.0, spread: float = 0.5, scale: float = 100.0, seed: int = 0) -> Synthetic:
    rng = np.random.default_rng(seed)
    common = rng.normal(size=d)
    common /= np.linalg.norm(common)
    means = common + spread * rng.normal(size=(k, d)) / np.sqrt(d)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    truth = rng.integers(0, present, size=n)
    x = np.empty((n, d), np.float32)
    step = 65536
    for s in range(0, n, step):  # by blocks: 10^6 x 512 stays within float32 once
        t = truth[s : s + step]
        block = means[t] + noise * spread * rng.normal(size=(len(t), d)) / np.sqrt(d)
        x[s : s + step] = block / np.linalg.norm(block, axis=1, keepdims=True)
    g = rng.normal(size=d)
    g /= np.linalg.norm(g)
    protos = means + gap * g + offset * spread * rng.normal(size=(k, d)) / np.sqrt(d)
    protos = (protos / np.linalg.norm(protos, axis=1, keepdims=True)).astype(np.float32)
    probs = np.empty((n, k), np.float32)
    for s in range(0, n, step):
        logits = scale * (x[s : s + step] @ protos.T)
        e = np.exp(logits - logits.max(1, keepdims=True))
        probs[s : s + step] = e / e.sum(1, keepdims=True)
    return Synthetic(x, truth, protos, probs, np.arange(present), scale)
