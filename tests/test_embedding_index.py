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


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("scan", ["numpy", "torch"])
def test_similarity_is_the_float32_product_of_the_stored_values(dtype: str, scan: str) -> None:
    n = 3 * EmbeddingIndex.BLOCK + 17  # blocks that do not divide the table
    ids, emb = table(n, 64, dtype)
    index = EmbeddingIndex(ids, emb, scan=scan)
    v = emb[5].astype(np.float32)
    sims = index.similarity(v)
    assert sims.dtype == np.float32 and sims.shape == (n,)
    np.testing.assert_allclose(sims, emb.astype(np.float64) @ v.astype(np.float64), atol=1e-6)
    assert index.embeddings.dtype == np.dtype(dtype)  # a float16 table is not widened in memory


def test_without_torch_the_scan_is_numpy_and_torch_is_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    ids, emb = table(2000, 32, "float32")
    index = EmbeddingIndex(ids, emb)
    index.similarity(emb[0])
    assert "torch" not in sys.modules and index.scan is None  # chosen again once torch is loaded


def test_with_torch_the_first_query_times_both_scans_and_keeps_one() -> None:
    import torch  # noqa: F401

    ids, emb = table(EmbeddingIndex.CALIBRATION_ROWS + 5, 32, "float32")
    index = EmbeddingIndex(ids, emb)
    sims = index.similarity(emb[0])
    assert index.scan in ("numpy", "torch")
    np.testing.assert_allclose(sims, index.similarity(emb[0], scan="numpy" if index.scan == "torch" else "torch"),
                               atol=1e-6)
    with pytest.raises(ValueError, match="unknown scan"):
        EmbeddingIndex(ids, emb, scan="gpu")


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
