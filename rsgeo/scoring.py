"""Scores from embeddings: CLIP zero-shot class probabilities and similarities."""

from __future__ import annotations

import numpy as np


def zero_shot_scores(image_emb: np.ndarray, class_emb: np.ndarray, logit_scale: float) -> np.ndarray:
    """``softmax(logit_scale * image @ class.T)`` per row, in float32.

    Both inputs hold unit rows. The softmax is computed in float64 with the max
    subtracted, so it neither overflows nor underflows at scale 100.
    """
    logits = logit_scale * (image_emb.astype(np.float64) @ class_emb.astype(np.float64).T)
    return softmax_rows(logits).astype(np.float32)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """The softmax of each row, in the rows' dtype, with the row's max subtracted first (no overflow)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def cosine_similarity(image_emb: np.ndarray, query_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of each unit row of ``image_emb`` with one unit vector."""
    out: np.ndarray = (image_emb @ query_emb.astype(image_emb.dtype)).astype(np.float32)
    return out


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank, highest value first; ties broken by position (stable)."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), np.int64)
    out[order] = np.arange(1, len(values) + 1)
    return out
