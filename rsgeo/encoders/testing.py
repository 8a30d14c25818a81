"""A deterministic, dependency-light encoder for tests and dry runs.

It is a fixed random projection of per-chip colour statistics, so similar
chips get similar embeddings and the results are reproducible bit for bit,
without torch. Texts embed through a hash of their words. It is a seam double:
never a stand-in for testing a real model's loading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from rsgeo.encoders.base import EncoderBase, EncoderIdentity, ImageSpec, l2_normalise

_FEATURES = 12


def hash_encoder_options(name: str) -> dict[str, int]:
    """``dim``/``size``/``seed`` of a test encoder named ``hash-DIM-SIZE-SEED`` (its model id's tail).

    The default ``hash`` (and any other name) is the 32-d default, so a result a
    non-default test encoder wrote opens with the encoder that wrote it.
    """
    parts = name.split("-")
    if len(parts) == 4 and parts[0] == "hash" and all(p.isdigit() for p in parts[1:]):
        dim, size, seed = (int(p) for p in parts[1:])
        if dim > 0 and size > 0:
            return {"dim": dim, "size": size, "seed": seed}
    return {}


class HashEncoder(EncoderBase):
    """Deterministic encoder: colour statistics through a fixed projection."""

    def __init__(self, *, dim: int = 32, size: int = 224, seed: int = 0, logit_scale: float = 100.0) -> None:
        self.embedding_dim = dim
        self.image_spec = ImageSpec(size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        default = (dim, size, seed) == (32, 224, 0)
        self.identity = EncoderIdentity("test:hash" if default else f"test:hash-{dim}-{size}-{seed}", None)
        self.logit_scale = logit_scale
        self.device = "cpu"
        self.languages: tuple[str, ...] | None = None
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((_FEATURES, dim)).astype(np.float32)

    def _features(self, chips: np.ndarray) -> np.ndarray:
        # C order first: NumPy's reductions sum in memory order, and the reader's batches
        # come in more than one layout; the same pixels must give the same bits.
        x = np.ascontiguousarray(chips).astype(np.float32) / 255.0
        mean = x.mean(axis=(1, 2))
        std = x.std(axis=(1, 2))
        h = x.shape[1] // 2
        top = x[:, :h].mean(axis=(1, 2))
        bottom = x[:, h:].mean(axis=(1, 2))
        return np.concatenate([mean, std, top, bottom], axis=1) - 0.25

    def encode_images(self, chips: np.ndarray) -> np.ndarray:
        # Not ``features @ projection``: BLAS kernels sum a row in an order that depends on
        # the row's place in the batch, and a chip must embed to the same bits wherever it
        # lands (resumed runs, cluster blocks). A sum over the 12 features is cheap.
        features = self._features(chips)
        return l2_normalise((features[:, :, None] * self._projection[None]).sum(axis=1))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.embedding_dim), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            feats = np.random.default_rng(seed).standard_normal(_FEATURES).astype(np.float32)
            out[i] = feats @ self._projection
        return l2_normalise(out)
