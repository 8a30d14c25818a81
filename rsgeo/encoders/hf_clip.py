"""transformers ``CLIPModel`` folders behind the :class:`~rsgeo.encoders.base.Encoder` seam.

Models published for transformers (``CLIPModel.save_pretrained``: ``config.json``,
weights, tokenizer and ``preprocessor_config.json``), such as
``flax-community/clip-rsicd-v2``. transformers is an optional extra, imported
only here and only when such a model is loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rsgeo.encoders.base import EncoderIdentity, ImageSpec, l2_normalise
from rsgeo.encoders.torch_clip import TorchClipEncoder, file_sha256, unit_rows
from rsgeo.errors import MissingDependencyError, ModelError, opt

logger = logging.getLogger(__name__)

WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
# PIL resample codes used by CLIPImageProcessor.
_RESAMPLE: dict[int, Literal["bicubic", "bilinear"]] = {2: "bilinear", 3: "bicubic"}


def require_transformers() -> Any:
    """Import transformers or fail with the pip line."""
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "this model needs the transformers library; install it with: pip install 'rsgeo[transformers]'"
        ) from None
    return transformers


def is_hf_clip_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a transformers CLIP model (``config.json`` with ``model_type: clip``)."""
    path = Path(folder) / "config.json"
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("model_type") == "clip")
    except (OSError, ValueError, AttributeError):
        return False


def image_spec_from_preprocessor(folder: Path, default_size: int) -> ImageSpec:
    """The input spec written in ``preprocessor_config.json`` (CLIP's defaults without one).

    CLIPImageProcessor resizes the shorter side and centre-crops, like
    open_clip's ``shortest`` mode; a fixed height/width without crop is
    ``squash``.
    """
    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return ImageSpec(size=default_size, mean=mean, std=std)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); re-download the model folder") from exc
    size = cfg.get("size", default_size)
    crop = cfg.get("crop_size", size)
    do_crop = cfg.get("do_center_crop", True)
    interpolation = _RESAMPLE.get(int(cfg.get("resample", 3)))
    if interpolation is None:
        raise ModelError(f"{path}: resample={cfg.get('resample')} is not supported by rsgeo (bicubic or bilinear only)")
    crop_px = crop if isinstance(crop, int) else crop.get("height", crop.get("shortest_edge"))
    if isinstance(crop, dict) and crop.get("width", crop_px) != crop_px:
        raise ModelError(f"{path}: non-square crop {crop} is not supported by rsgeo")
    if isinstance(size, dict) and "shortest_edge" in size:
        edge = size["shortest_edge"]
        if do_crop and crop_px != edge:
            raise ModelError(f"{path}: resize to {edge} then crop to {crop_px} is not supported by rsgeo")
        return ImageSpec(int(edge), _triple(cfg, "image_mean", mean), _triple(cfg, "image_std", std), interpolation, "shortest")
    if isinstance(size, dict) and "height" in size:
        if size["height"] != size.get("width"):
            raise ModelError(f"{path}: non-square size {size} is not supported by rsgeo")
        if do_crop and crop_px != size["height"]:
            raise ModelError(f"{path}: squash then crop is not supported by rsgeo")
        return ImageSpec(int(size["height"]), _triple(cfg, "image_mean", mean), _triple(cfg, "image_std", std), interpolation, "squash")
    edge = int(size)  # old processors: an int is the shorter side
    if do_crop and crop_px != edge:
        raise ModelError(f"{path}: resize to {edge} then crop to {crop_px} is not supported by rsgeo")
    return ImageSpec(edge, _triple(cfg, "image_mean", mean), _triple(cfg, "image_std", std), interpolation, "shortest")


def _triple(cfg: dict[str, Any], key: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
    value = cfg.get(key, default)
    return (float(value[0]), float(value[1]), float(value[2]))


@contextmanager
def _transformers_quiet(transformers: Any) -> Iterator[None]:
    """Silence transformers' own stderr handler: rsgeo reports load problems itself."""
    tlog = transformers.utils.logging
    level = tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def _features(output: Any) -> Any:
    # transformers 4 returns the projected tensor; 5 a ModelOutput whose pooler_output holds it.
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output


class HFClipEncoder(TorchClipEncoder):
    """A transformers ``CLIPModel`` and its tokenizer behind the Encoder seam."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        image_spec: ImageSpec,
        identity: EncoderIdentity,
        device: str | None = None,
        precision: str = "fp32",
        languages: tuple[str, ...] | None = ("en",),
    ) -> None:
        super().__init__(
            model, tokenizer, image_spec=image_spec, identity=identity, device=device,
            precision=precision, languages=languages,
        )
        self.embedding_dim = int(model.config.projection_dim)
        self.context_length = int(
            min(getattr(tokenizer, "model_max_length", 77) or 77, model.config.text_config.max_position_embeddings)
        )

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        model_id: str | None = None,
        device: str | None = None,
        precision: str = "fp32",
        languages: tuple[str, ...] | None = ("en",),
    ) -> HFClipEncoder:
        """Load a ``CLIPModel.save_pretrained`` folder strictly (no missing or unexpected weight)."""
        transformers = require_transformers()
        folder = Path(folder).expanduser()
        if not is_hf_clip_folder(folder):
            raise ModelError(
                f"{folder} is not a transformers CLIP folder (config.json with model_type clip); "
                f"save one with CLIPModel.save_pretrained or pass an open_clip folder with {opt('model', 'local-dir:PATH')}"
            )
        weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
        if weights is None:
            raise ModelError(f"{folder} holds no weights ({' or '.join(WEIGHT_NAMES)}); copy the model's weights there")
        try:
            with _transformers_quiet(transformers):
                # Mismatched shapes are collected (not raised) so the message can name them.
                model, info = transformers.CLIPModel.from_pretrained(
                    str(folder), output_loading_info=True, local_files_only=True, ignore_mismatched_sizes=True
                )
        except Exception as exc:  # transformers/safetensors/torch raise many types for a bad file
            raise ModelError(
                f"cannot load the transformers CLIP model in {folder}: {_first_line(exc)}; "
                f"{weights.name} may be truncated, re-download it"
            ) from exc
        try:
            with _transformers_quiet(transformers):
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"cannot load the tokenizer in {folder}: {_first_line(exc)}; copy the model's tokenizer files there"
            ) from exc
        problems = {k: list(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if any(problems.values()):
            detail = ", ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {v[:2]})" for k, v in problems.items() if v)
            raise ModelError(
                f"weights in {folder} do not match its config.json: {detail}; re-download the model folder"
            )
        spec = image_spec_from_preprocessor(folder, int(model.config.vision_config.image_size))
        return cls(
            model,
            tokenizer,
            image_spec=spec,
            identity=EncoderIdentity(model_id or f"hf-clip:{folder}", file_sha256(weights), {"weights": weights.name}),
            device=device,
            precision=precision,
            languages=languages,
        )

    def _image_features(self, x: Any) -> Any:
        return _features(self.model.get_image_features(pixel_values=x))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.embedding_dim), np.float32)
        # Padded to the longest text, not the context length: CLIP's text tower is causal and
        # pools at the end-of-text token, so the padding never reaches the embedding, and a
        # 4-token query runs 4 positions instead of 77 (see rsgeo/encoders/text_length.py).
        batch = self.tokenizer(
            list(texts), padding="longest", max_length=self.context_length, truncation=True, return_tensors="pt"
        )
        with torch.inference_mode():
            with self._autocast():
                emb = _features(
                    self.model.get_text_features(
                        input_ids=batch["input_ids"].to(self.device),
                        attention_mask=batch["attention_mask"].to(self.device),
                    )
                )
            return l2_normalise(unit_rows(emb))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
