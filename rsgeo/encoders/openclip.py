"""open_clip models behind the :class:`~rsgeo.encoders.base.Encoder` seam."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.encoders.base import EncoderIdentity, ImageSpec, l2_normalise
from rsgeo.encoders.text_length import TextLengthTrimmer
from rsgeo.errors import ModelError

logger = logging.getLogger(__name__)


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


class OpenClipEncoder:
    """An open_clip ``CLIP``/``CustomTextCLIP`` model and its tokenizer.

    Build one with :func:`from_name` (``hf-hub:``/built-in
    architecture names) or wrap a model you already hold with the constructor.
    Images are moved to the device as ``uint8`` and normalised there.
    """

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
        self.logit_scale = float(model.logit_scale.exp().item())
        self._mean = torch.tensor(image_spec.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(image_spec.std, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode():
            probe_tokens = self.tokenizer(["probe", "a satellite photo of a solar farm."]).to(self.device)
            probe = self.model.encode_text(probe_tokens[:1])
        self.embedding_dim = int(probe.shape[-1])
        # Texts run on their real token length, not the padded 77 (exact; see text_length.py).
        hf_tokenizer = getattr(tokenizer, "tokenizer", None)
        self._encode_text = TextLengthTrimmer(
            self.model, pad_id=getattr(hf_tokenizer, "pad_token_id", None), probe=probe_tokens
        )

    @classmethod
    def from_name(
        cls,
        name: str,
        *,
        device: str | None = None,
        precision: str = "fp32",
        checkpoint: str | Path | None = None,
        cache_dir: str | None = None,
        languages: tuple[str, ...] | None = None,
        model_id: str | None = None,
    ) -> OpenClipEncoder:
        """Load an open_clip model by name.

        Args:
            name: ``hf-hub:ORG/REPO`` or a built-in architecture
                (``ViT-B-32``); a built-in name without ``checkpoint`` gives
                random weights (tests, benchmarks). Local folders load through
                :func:`rsgeo.zoo.loading.load_open_clip_dir`, offline.
            checkpoint: state-dict file for a built-in architecture, loaded
                strictly (any missing or unexpected key is an error).
        """
        import open_clip

        weights_sha = None
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=None, cache_dir=cache_dir, device="cpu"
            )
            tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load open_clip model {name!r}: {_first_line(exc)}") from exc
        if checkpoint is not None:
            weights_sha = load_checkpoint_strict(model, checkpoint)
        image_spec = image_spec_from_open_clip(model, preprocess)
        return cls(
            model,
            tokenizer,
            image_spec=image_spec,
            identity=EncoderIdentity(model_id or name, weights_sha),
            device=device,
            precision=precision,
            languages=languages,
        )

    #: The reader lays batches out channel-first in memory for this encoder
    #: (see :class:`rsgeo.reader.ChipReader`): no transpose before the model.
    channels_first = True

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        return torch.autocast(device_type=self.device.split(":")[0], dtype=dtype)

    def empty_batch(self, n: int, size: int, channels_first: bool = True) -> np.ndarray:
        """A ``uint8`` ``(n, size, size, 3)`` batch buffer for the reader to fill.

        On CUDA it lives in pinned (page-locked) memory, so the copy to the GPU
        is an asynchronous DMA instead of a staged, blocking copy.
        """
        if not self.device.startswith("cuda"):
            return _empty_chips(n, size, channels_first)
        import torch

        shape = (n, 3, size, size) if channels_first else (n, size, size, 3)
        array = torch.empty(shape, dtype=torch.uint8, pin_memory=True).numpy()
        return array.transpose(0, 2, 3, 1) if channels_first else array

    def model_input(self, chips: np.ndarray) -> Any:
        """The float tensor the image tower is fed for ``uint8`` ``(N, H, W, 3)`` chips.

        Bit for bit what open_clip's ``ToTensor`` + ``Normalize`` make of the
        same pixels (``x.float() / 255``, then ``(x - mean) / std`` in float32),
        computed on the device after moving the 4x smaller ``uint8`` there.
        """
        return normalise_chips(chips, self._mean, self._std, self.device)

    def encode_images(self, chips: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = self.model_input(chips)
            with self._autocast():
                emb = self.model.encode_image(x)
            emb = emb.float()
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return emb.cpu().numpy().astype(np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.embedding_dim), np.float32)
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            with self._autocast():
                emb = self._encode_text(tokens)
            emb = emb.float()
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return l2_normalise(emb.cpu().numpy())


def _empty_chips(n: int, size: int, channels_first: bool) -> np.ndarray:
    if channels_first:
        return np.empty((n, 3, size, size), np.uint8).transpose(0, 2, 3, 1)
    return np.empty((n, size, size, 3), np.uint8)


def normalise_chips(chips: np.ndarray, mean: Any, std: Any, device: str) -> Any:
    """``uint8`` ``(N, H, W, 3)`` chips → normalised ``float32`` ``(N, 3, H, W)`` on ``device``.

    Bit for bit torchvision's ``ToTensor`` (``x.float().div(255)``) then
    ``Normalize`` (``sub_(mean).div_(std)``), done on the device after moving
    the 4x smaller ``uint8`` there; pinned host memory is copied
    asynchronously. Chips laid out channel-first in memory
    (``chips.transpose(0, 3, 1, 2)`` contiguous, as the reader makes them for
    this encoder) need no transpose. ``mean`` and ``std`` are ``float32``
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


def image_spec_from_open_clip(model: Any, preprocess: Any = None) -> ImageSpec:
    """Read the input spec open_clip attached to the model's visual tower."""
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ModelError(f"non-square model input {tuple(size)} is not supported")
        size = size[0]
    resize_mode = cfg.get("resize_mode", "shortest")
    if resize_mode not in ("shortest", "squash"):
        raise ModelError(f"open_clip resize_mode {resize_mode!r} is not supported by rsgeo yet")
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in ("bicubic", "bilinear"):
        raise ModelError(f"interpolation {interpolation!r} is not supported by rsgeo yet")
    return ImageSpec(
        size=int(size),
        mean=tuple(float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),  # type: ignore[arg-type]
        interpolation=interpolation,
        resize_mode=resize_mode,
    )


def load_checkpoint_strict(model: Any, checkpoint: str | Path) -> str:
    """Load a state dict into ``model``; any key mismatch raises ModelError.

    Returns the file's SHA-256.
    """
    import open_clip

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist; check the path given with --checkpoint")
    try:
        incompatible = open_clip.load_checkpoint(model, str(path), strict=False)
    except RuntimeError as exc:
        # torch reports tensors of the wrong shape even with strict=False:
        # the architecture does not match, the file is not damaged.
        lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if "size mismatch" in line]
        if not lines:
            raise ModelError(
                f"cannot read checkpoint {path}: {_first_line(exc)}; the file may be truncated, re-download it"
            ) from exc
        raise ModelError(
            f"checkpoint {path.name} does not match the architecture: {len(lines)} tensors differ in shape "
            f"(e.g. {lines[0]}); pick the architecture the checkpoint was trained with"
        ) from exc
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ModelError(
            f"cannot read checkpoint {path}: {_first_line(exc)}; the file may be truncated, re-download it"
        ) from exc
    missing = list(getattr(incompatible, "missing_keys", []) or [])
    unexpected = list(getattr(incompatible, "unexpected_keys", []) or [])
    if missing or unexpected:
        raise ModelError(
            f"checkpoint {path.name} does not match the architecture: "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
            "pick the --arch the checkpoint was trained with"
        )
    return file_sha256(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
