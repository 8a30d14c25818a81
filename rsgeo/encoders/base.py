"""The ``Encoder`` seam: what rsgeo needs from a vision-language model.

An encoder turns batches of chips into L2-normalised image embeddings and
texts into L2-normalised text embeddings, and declares the input it expects
(:class:`ImageSpec`) and its logit scale. open_clip, transformers and the
deterministic test encoder all implement it; the pipeline never sees a model
object directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class Calibration:
    """What a static int8 tower was calibrated on: the scheme, the chips of the scene, their SHA-256."""

    scheme: str
    chips: int
    sha256: str


@dataclass(frozen=True)
class EngineInfo:
    """What ran the image tower: the engine (``torch``, ``onnxruntime``, ``openvino`` ...), its
    version and the precision it ran at. Stored with results (see :mod:`rsgeo.engines`)."""

    name: str
    version: str | None
    precision: str = "fp32"
    #: A static int8 tower's calibration, else ``None``.
    calibration: Calibration | None = None


#: The model's published prompt templates for a language (``None``: the model's default language).
TemplatesFor = Callable[[str | None], Sequence[str]]


@runtime_checkable
class Encoder(Protocol):
    """A CLIP-style dual encoder behind rsgeo's pipeline.

    Besides the two ``encode_*`` calls an encoder states what the rest of
    rsgeo may tailor to it (:class:`EncoderBase` gives the defaults):
    ``channels_first`` and ``empty_batch`` (the batch memory layout it eats
    without a copy, and buffers for the reader to fill, pinned on CUDA),
    ``templates`` (its authors' prompt templates, or ``None``),
    ``languages`` (what its text tower reads) and ``training_extent_m`` (the
    ground side of its training images, from which the default chip follows).
    """

    identity: EncoderIdentity
    image_spec: ImageSpec
    logit_scale: float
    embedding_dim: int
    device: str
    #: Languages the text tower reads (ISO 639-1), or ``None`` when unknown.
    languages: tuple[str, ...] | None
    #: Batches laid out channel-first in memory reach the model without a transpose.
    channels_first: bool
    #: The model's own prompt templates per language, or ``None`` (the registry's or generic ones).
    templates: TemplatesFor | None
    #: Ground side (metres) of a typical training image, or ``None`` when unknown: the default
    #: chip is then this extent in the scene's pixels (:func:`rsgeo.grid.default_chip_px`).
    training_extent_m: float | None
    #: What runs the image tower, and at which precision (recorded in the metadata).
    engine: EngineInfo

    def empty_batch(self, n: int, size: int) -> np.ndarray:
        """An uninitialised ``uint8`` ``(n, size, size, 3)`` batch, laid out as ``channels_first`` says."""
        ...

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


def empty_chips(n: int, size: int, channels_first: bool = False) -> np.ndarray:
    """An uninitialised ``(n, size, size, 3)`` ``uint8`` batch in the given memory layout."""
    if channels_first:
        return np.empty((n, 3, size, size), np.uint8).transpose(0, 2, 3, 1)
    return np.empty((n, size, size, 3), np.uint8)


class EncoderBase:
    """Defaults of the :class:`Encoder` capabilities for encoders to inherit."""

    languages: tuple[str, ...] | None = None
    channels_first: bool = False
    templates: TemplatesFor | None = None
    training_extent_m: float | None = None
    engine: EngineInfo = EngineInfo("numpy", np.__version__, "fp32")

    def empty_batch(self, n: int, size: int) -> np.ndarray:
        return empty_chips(n, size, self.channels_first)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)
