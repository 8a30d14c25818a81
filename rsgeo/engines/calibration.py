"""Which chips of a scene calibrate a static int8 image tower, chosen the same way by every run.

Static int8 (``--engine openvino --precision int8``) fixes every activation's
range once, from a calibration batch. The chips of that batch must not depend
on what a particular run happens to read first: a run resumed part way, or a
cluster worker given a block in the middle of the scene, must quantise with
the very ranges of an uninterrupted run, or one result would hold chips
encoded by two different models. So the chips are a function of the scene's
grid alone: :data:`CANDIDATES_PER_CHIP` x ``n`` candidates spread evenly over
the whole grid, read; of those with enough valid pixels, ``n`` spread evenly
(repeated in turn when fewer are valid). The same scene and grid always give
the same batch, so the same calibrated file (cached under the batch's hash).
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Candidates read per calibration chip (some fall on nodata).
CANDIDATES_PER_CHIP = 4


def candidate_ids(grid_size: int, n: int) -> np.ndarray:
    """Tile ids, evenly spread over a grid of ``grid_size`` chips, to read as calibration candidates."""
    k = min(grid_size, CANDIDATES_PER_CHIP * n)
    return np.unique(np.linspace(0, grid_size - 1, k).round().astype(np.int64)) if k else np.zeros(0, np.int64)


def pick(valid_ids: np.ndarray, n: int) -> np.ndarray:
    """Positions into ``valid_ids`` (sorted) of the ``n`` calibration chips: evenly spread, repeated when too few."""
    m = len(valid_ids)
    if m == 0:
        return np.zeros(0, np.int64)
    if m >= n:
        return np.linspace(0, m - 1, n).round().astype(np.int64)
    return np.arange(n, dtype=np.int64) % m


def batch_sha256(batch: np.ndarray) -> str:
    """The calibration batch's SHA-256 (its dtype, shape and bytes): names its calibrated file."""
    h = hashlib.sha256(f"{batch.dtype.str}{batch.shape}".encode())
    h.update(np.ascontiguousarray(batch).tobytes())
    return h.hexdigest()
