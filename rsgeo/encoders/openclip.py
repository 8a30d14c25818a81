"""open_clip models behind the :class:`~rsgeo.encoders.base.Encoder` seam."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.encoders.base import EncoderIdentity, ImageSpec, l2_normalise
from rsgeo.encoders.text_length import TextLengthTrimmer
from rsgeo.encoders.torch_clip import TorchClipEncoder, file_sha256, unit_rows
from rsgeo.errors import ModelError, opt

logger = logging.getLogger(__name__)


class OpenClipEncoder(TorchClipEncoder):
    """An open_clip ``CLIP``/``CustomTextCLIP`` model and its tokenizer.

    Build one with :func:`from_name` (``hf-hub:``/built-in
    architecture names) or wrap a model you already hold with the constructor.
    Images are moved to the device as ``uint8`` and normalised there; texts
    run on their real token length (:mod:`rsgeo.encoders.text_length`).
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

        super().__init__(
            model, tokenizer, image_spec=image_spec, identity=identity, device=device,
            precision=precision, languages=languages,
        )
        dim = getattr(getattr(self.model, "visual", None), "output_dim", None)
        if not isinstance(dim, int):  # a tower that does not say its width: one text forward tells
            with torch.inference_mode():
                dim = int(self.model.encode_text(self.tokenizer(["probe"]).to(self.device)).shape[-1])
        self.embedding_dim = dim
        # Built (and checked against encode_text) on the first text: an embed run never pays for it.
        self._trimmer: TextLengthTrimmer | None = None

    @property
    def _encode_text(self) -> TextLengthTrimmer:
        """``encode_text`` on the texts' real token length, not the padded 77 (exact; see text_length.py)."""
        if self._trimmer is None:
            import torch

            hf_tokenizer = getattr(self.tokenizer, "tokenizer", None)
            with torch.inference_mode():
                probe_tokens = self.tokenizer(["probe", "a satellite photo of a solar farm."]).to(self.device)
                self._trimmer = TextLengthTrimmer(
                    self.model, pad_id=getattr(hf_tokenizer, "pad_token_id", None), probe=probe_tokens
                )
        return self._trimmer

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

    def _image_features(self, x: Any) -> Any:
        return self.model.encode_image(x)

    def image_tower(self) -> Any:
        """open_clip's visual tower itself (``encode_image`` without normalising)."""
        return self.model.visual.eval()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.embedding_dim), np.float32)
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            with self._autocast():
                emb = self._encode_text(tokens)
            return l2_normalise(unit_rows(emb))


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
        raise ModelError(f"checkpoint {path} does not exist; check the path given with {opt('checkpoint')}")
    try:
        if path.suffix in (".npz", ".npy"):  # big_vision (SigLIP) weights: open_clip converts them
            incompatible = open_clip.load_checkpoint(model, str(path), strict=False)
        else:
            incompatible = _load_in_place(model, path)
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
            "pick the architecture (arch:ARCH) the checkpoint was trained with"
        )
    return file_sha256(path)


def _read_state_dict(path: Path) -> dict[str, Any]:
    """The file's tensors, memory-mapped where the format allows (safetensors, torch's zip format)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # the legacy (pre-zip) format cannot be mapped: read it
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise RuntimeError("no state dict in the file")
    if next(iter(state)).startswith("module."):
        state = {k[len("module."):]: v for k, v in state.items()}
    out: dict[str, Any] = state
    return out


def _load_in_place(model: Any, path: Path) -> Any:
    """Load ``path`` into ``model`` as ``open_clip.load_checkpoint`` does, without a second copy.

    The same conversions of third-party and older layouts run (open_clip's own
    functions); then, where every tensor already has the parameter's dtype and
    shape, the parameters *become* the file's memory-mapped tensors (copy-on-write
    pages: nothing is read before it is used, and the weights are never held
    twice). Otherwise they are copied in as usual.
    """
    import torch
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    state = convert_state_dict(model, _read_state_dict(path))
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for name in ("logit_scale", "logit_bias"):
        own = getattr(model, name, None)
        if name in state and isinstance(own, torch.Tensor) and own.ndim != state[name].ndim:
            state[name] = state[name].reshape(own.shape)
    if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None:
        state["logit_bias"] = torch.zeros_like(state["logit_scale"])
    own_state = model.state_dict()
    if "text.transformer.embeddings.position_ids" not in own_state:  # a buffer transformers >= 4.31 no longer saves
        state.pop("text.transformer.embeddings.position_ids", None)
    resize_pos_embed(state, model)
    resize_text_pos_embed(state, model)
    assign = all(
        k in own_state and own_state[k].dtype == v.dtype and own_state[k].shape == v.shape for k, v in state.items()
    )
    return model.load_state_dict(state, strict=False, assign=assign)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
