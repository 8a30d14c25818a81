"""The in-memory index behind ``open_result(...).query``: exact similarities and rankings."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rsgeo.results import EmbeddingIndex


def table(n: int, dim: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return np.arange(0, 3 * n, 3, dtype=np.int64), emb.astype(dtype)


@pytest.fixture(params=["numpy", "torch"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The scan runs on torch only where torch is loaded already (see EmbeddingIndex.similarity)."""
    if request.param == "torch":
        import torch  # noqa: F401
    else:
        monkeypatch.delitem(sys.modules, "torch", raising=False)
    return str(request.param)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_similarity_is_the_float32_product_of_the_stored_values(dtype: str, backend: str) -> None:
    n = 3 * EmbeddingIndex.BLOCK + 17  # blocks that do not divide the table
    ids, emb = table(n, 64, dtype)
    index = EmbeddingIndex(ids, emb)
    v = emb[5].astype(np.float32)
    sims = index.similarity(v)
    assert sims.dtype == np.float32 and sims.shape == (n,)
    np.testing.assert_allclose(sims, emb.astype(np.float64) @ v.astype(np.float64), atol=1e-6)
    assert index.embeddings.dtype == np.dtype(dtype)  # a float16 table is not widened in memory


def test_top_k_and_threshold_rank_best_first() -> None:
    ids, emb = table(5000, 32, "float32")
    index = EmbeddingIndex(ids, emb)
    v = emb[42]
    rows, sims = index.top_k(v, 10)
    full = emb.astype(np.float64) @ v
    assert rows[0] == 42 and sims[0] == pytest.approx(1.0, abs=1e-6)
    assert list(rows) == list(np.argsort(-full, kind="stable")[:10])
    assert np.all(np.diff(sims) <= 0)
    rows, sims = index.top_k(v, None, threshold=0.3)
    assert set(np.nonzero(full >= 0.3 + 1e-6)[0]) <= set(rows) <= set(np.nonzero(full >= 0.3 - 1e-6)[0])
    assert len(rows) > 0
    assert np.all(sims >= 0.3)


def test_empty_index() -> None:
    index = EmbeddingIndex(np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    rows, sims = index.top_k(np.ones(8, np.float32) / np.sqrt(8), 5)
    assert len(rows) == 0 and len(sims) == 0
