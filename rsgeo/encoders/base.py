"""The ``Encoder`` seam: what rsgeo needs from a vision-language model.

An encoder turns batches of chips into L2-normalised image embeddings and
texts into L2-normalised text embeddings, and declares the input it expects
(:class:`ImageSpec`) and its logit scale. open_clip, transformers and the
deterministic test encoder all implement it; the pipeline never sees a model
object directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

ResizeMode = Literal["shortest", "squash"]


@dataclass(frozen=True)
class ImageSpec:
    """The image tower's input: a square RGB image and its normalisation.

    ``resize_mode`` follows open_clip: ``shortest`` resizes the shorter side to
    ``size`` (bicubic, antialiased like PIL) then centre-crops; ``squash``
    resizes both sides to ``size``.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    resize_mode: ResizeMode = "shortest"


@dataclass(frozen=True)
class EncoderIdentity:
    """What produced an embedding: stored with results so they are never mixed."""

    model_id: str
    weights_sha256: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Encoder(Protocol):
    """A CLIP-style dual encoder behind rsgeo's pipeline."""

    identity: EncoderIdentity
    image_spec: ImageSpec
    logit_scale: float
    embedding_dim: int
    device: str
    #: Languages the text tower reads (ISO 639-1), or ``None`` when unknown.
    languages: tuple[str, ...] | None

    def encode_images(self, chips: np.ndarray) -> np.ndarray:
        """Embed a batch of chips.

        Args:
            chips: ``uint8`` array ``(N, size, size, 3)``, already resized and
                cropped to ``image_spec.size`` (see :mod:`rsgeo.preprocess`).

        Returns:
            ``float32`` array ``(N, D)``, each row of unit L2 norm.
        """
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns ``float32`` ``(N, D)`` with unit-norm rows."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)
