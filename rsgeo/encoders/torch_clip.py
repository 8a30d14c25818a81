"""What every torch CLIP encoder shares: device, precision, image input, unit vectors.

:class:`TorchClipEncoder` holds a two-tower torch model and its tokenizer and
does the parts of the :class:`~rsgeo.encoders.base.Encoder` seam that do not
depend on the library the model comes from: moving ``uint8`` chips to the
device and normalising them there, pinned batch buffers on CUDA, autocast for
``bf16``/``fp16``, and unit-length output. A subclass says how to call its
library's towers (:meth:`_image_features`, :meth:`encode_texts`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.encoders.base import EncoderBase, EncoderIdentity, EngineInfo, ImageSpec, empty_chips


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def normalise_chips(chips: np.ndarray, mean: Any, std: Any, device: str) -> Any:
    """``uint8`` ``(N, H, W, 3)`` chips → normalised ``float32`` ``(N, 3, H, W)`` on ``device``.

    Bit for bit torchvision's ``ToTensor`` (``x.float().div(255)``) then
    ``Normalize`` (``sub_(mean).div_(std)``), done on the device after moving
    the 4x smaller ``uint8`` there; pinned host memory is copied
    asynchronously. Chips laid out channel-first in memory
    (``chips.transpose(0, 3, 1, 2)`` contiguous, as the reader makes them for
    these encoders) need no transpose. ``mean`` and ``std`` are ``float32``
    tensors shaped ``(1, 3, 1, 1)`` on ``device``.
    """
    import torch

    nchw = chips.transpose(0, 3, 1, 2)
    channels_last = not nchw.flags.c_contiguous
    x = torch.from_numpy(np.ascontiguousarray(chips) if channels_last else nchw)
    if device.startswith("cuda"):
        if not x.is_pinned():
            x = x.pin_memory()
        x = x.to(device, non_blocking=True)
    else:
        x = x.to(device)
    if channels_last:
        x = x.permute(0, 3, 1, 2).contiguous()
    return x.float().div_(255).sub_(mean).div_(std)


def unit_rows(emb: Any) -> np.ndarray:
    """A torch batch of embeddings → unit-length ``float32`` rows in NumPy."""
    emb = emb.float()
    emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out: np.ndarray = emb.cpu().numpy().astype(np.float32, copy=False)
    return out


class TorchClipEncoder(EncoderBase):
    """Base of the open_clip and transformers encoders (see the module docstring)."""

    #: The reader lays batches out channel-first in memory for these encoders
    #: (see :class:`rsgeo.reader.ChipReader`): no transpose before the model.
    channels_first = True
    #: Set by the subclass (from the model's projection).
    embedding_dim: int

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        image_spec: ImageSpec,
        identity: EncoderIdentity,
        device: str | None = None,
        precision: str = "fp32",
        languages: tuple[str, ...] | None = None,
    ) -> None:
        import torch

        self.device = device or default_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_spec = image_spec
        self.identity = identity
        self.languages = languages
        self.precision = precision
        self.engine = EngineInfo("torch", str(torch.__version__), precision)
        self.logit_scale = float(model.logit_scale.exp().item())
        self._mean = torch.tensor(image_spec.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(image_spec.std, device=self.device).view(1, 3, 1, 1)

    def _autocast(self) -> Any:
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        return torch.autocast(device_type=self.device.split(":")[0], dtype=dtype)

    def empty_batch(self, n: int, size: int) -> np.ndarray:
        """A ``uint8`` ``(n, size, size, 3)`` batch buffer for the reader to fill.

        On CUDA it lives in pinned (page-locked) memory, so the copy to the GPU
        is an asynchronous DMA instead of a staged, blocking copy.
        """
        channels_first = self.channels_first
        if not self.device.startswith("cuda"):
            return empty_chips(n, size, channels_first)
        import torch

        shape = (n, 3, size, size) if channels_first else (n, size, size, 3)
        array = torch.empty(shape, dtype=torch.uint8, pin_memory=True).numpy()
        return array.transpose(0, 2, 3, 1) if channels_first else array

    def model_input(self, chips: np.ndarray) -> Any:
        """The float tensor the image tower is fed for ``uint8`` ``(N, H, W, 3)`` chips.

        Bit for bit what torchvision's ``ToTensor`` + ``Normalize`` make of the
        same pixels (``x.float() / 255``, then ``(x - mean) / std`` in float32),
        computed on the device after moving the 4x smaller ``uint8`` there.
        """
        return normalise_chips(chips, self._mean, self._std, self.device)

    def _image_features(self, x: Any) -> Any:
        """The image tower's (unnormalised) output for a normalised batch."""
        raise NotImplementedError

    def image_tower(self) -> Any:
        """The image tower as a ``torch.nn.Module``: normalised ``(N, 3, S, S)`` → features.

        What an inference engine exports (:mod:`rsgeo.engines`); its output is
        :meth:`_image_features`'s, before the unit-length scaling.
        """
        import torch

        encoder = self

        class ImageTower(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = encoder.model

            def forward(self, x: Any) -> Any:
                return encoder._image_features(x)

        return ImageTower().eval()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length text embeddings; each library tokenises and calls its text tower its own way."""
        raise NotImplementedError

    def encode_images(self, chips: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = self.model_input(chips)
            with self._autocast():
                emb = self._image_features(x)
            return unit_rows(emb)
