"""Encoders: the seam between rsgeo and vision-language models."""

from __future__ import annotations

from rsgeo.encoders.base import Encoder, EncoderIdentity, ImageSpec, l2_normalise
from rsgeo.encoders.loading import load_encoder

__all__ = ["Encoder", "EncoderIdentity", "ImageSpec", "l2_normalise", "load_encoder"]
