"""Encoders: the seam between rsgeo and vision-language models.

Encoders never import the model zoo: :func:`rsgeo.zoo.load_encoder` turns a
model name into an encoder.
"""

from __future__ import annotations

from rsgeo.encoders.base import Encoder, EncoderBase, EncoderIdentity, ImageSpec, l2_normalise

__all__ = ["Encoder", "EncoderBase", "EncoderIdentity", "ImageSpec", "l2_normalise"]
