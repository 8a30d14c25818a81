"""Fit a chip to the model's input, exactly as open_clip's ``preprocess`` would.

open_clip's image transform is ``Resize`` (shorter side, PIL bicubic with
antialias) → ``CenterCrop`` → ``ToTensor`` → ``Normalize``. rsgeo keeps the
geometric part here, on ``uint8`` arrays, and leaves ``ToTensor``/``Normalize``
to the encoder, which does them on the device. For a chip that already has the
model's input size (the default) nothing happens here at all; other sizes go
through the very PIL call torchvision makes, so the model sees the same pixels
as with the reference ``preprocess(Image.fromarray(chip))``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from rsgeo.encoders.base import ImageSpec

_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def resized_shape(height: int, width: int, spec: ImageSpec) -> tuple[int, int]:
    """Output ``(height, width)`` of the resize step (torchvision's rule)."""
    size = spec.size
    if spec.resize_mode == "squash":
        return size, size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def fit_chip(chip: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Resize and centre-crop one ``uint8`` ``(H, W, 3)`` chip to the model input.

    Returns a ``uint8`` ``(size, size, 3)`` array (the input itself when it
    already has that shape).
    """
    height, width = chip.shape[:2]
    size = spec.size
    if (height, width) == (size, size):
        return chip
    new_h, new_w = resized_shape(height, width, spec)
    if (new_h, new_w) != (height, width):
        image = Image.fromarray(np.ascontiguousarray(chip), mode="RGB")
        chip = np.asarray(image.resize((new_w, new_h), _PIL_FILTERS[spec.interpolation]))
        height, width = new_h, new_w
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return chip[top : top + size, left : left + size]
