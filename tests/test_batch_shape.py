"""A chip embeds to the same bytes whatever batch it is in (rsgeo.encoding.encode_batch).

Resumed runs and cluster blocks cut a scene into batches differently from an
uninterrupted run; their stored embeddings must still be the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsgeo.encoding import encode_batch

BATCH = 16


def chips(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def encode_in(encoder, x: np.ndarray, order: np.ndarray, cuts: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Encode ``x[order]`` in the batches between ``cuts``; rows back in the original order."""
    out = np.empty((len(x), encoder.embedding_dim), np.float32)
    bounds = [0, *cuts, len(x)]
    for a, b in zip(bounds, bounds[1:]):
        idx = order[a:b]
        out[idx] = encode_batch(encoder, x[idx], BATCH)
    return out


@pytest.fixture(params=["tiny-open-clip", "test:hash"])
def encoder(request: pytest.FixtureRequest, tiny_clip_dir: Path):  # type: ignore[no-untyped-def]
    from rsgeo.zoo import load_encoder

    name = f"local-dir:{tiny_clip_dir}" if request.param == "tiny-open-clip" else "test:hash"
    return load_encoder(name, device="cpu")


def test_same_bytes_in_any_batch(encoder) -> None:  # type: ignore[no-untyped-def]
    x = chips(37, encoder.image_spec.size)
    reference = encode_in(encoder, x, np.arange(len(x)), [16, 32])  # 16 + 16 + a padded 5
    shuffled = np.random.default_rng(1).permutation(len(x))
    for order, cuts in [(shuffled, [16, 32]), (np.arange(len(x)), [3, 9, 25, 30]), (shuffled[::-1], [1, 2, 20])]:
        got = encode_in(encoder, x, order, cuts)
        assert got.tobytes() == reference.tobytes()


def test_full_batches_are_not_padded(encoder) -> None:  # type: ignore[no-untyped-def]
    x = chips(BATCH, encoder.image_spec.size)
    assert encode_batch(encoder, x, BATCH).tobytes() == encoder.encode_images(x).tobytes()
    assert encode_batch(encoder, x[:0], BATCH).shape[0] == 0
