"""Build open_clip models from published files, strictly and offline-capably.

Two published forms are handled:

* an open_clip folder (``open_clip_config.json`` + weights + tokenizer files),
  as pushed to the hub by open_clip or downloaded with ``hf download``;
* a built-in open_clip architecture plus a state-dict file (RemoteCLIP,
  GeoRSCLIP, SkyCLIP).

Weights are always loaded strictly (:func:`rsgeo.encoders.openclip.load_checkpoint_strict`).
A Hugging Face text tower (RS-M-CLIP's XLM-RoBERTa) is built from a
``config.json`` found next to the open_clip config, or from the copy rsgeo
ships (:mod:`rsgeo.zoo.text_configs`), so no hub request is made.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from rsgeo.encoders.base import EncoderIdentity, ImageSpec
from rsgeo.encoders.openclip import OpenClipEncoder, image_spec_from_open_clip, load_checkpoint_strict
from rsgeo.errors import ModelError
from rsgeo.zoo.text_configs import known_text_config, text_config_folder

logger = logging.getLogger(__name__)

WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "vocab.json", "spiece.model")


@contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Drop open_clip's root-logger chatter while building a model.

    open_clip warns "No pretrained weights loaded ... initialized randomly"
    when asked for a bare architecture, which rsgeo always does before loading
    the weights itself; on the CLI that warning would be false and noisy.
    """

    class _DropOpenClip(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            from_open_clip = "open_clip" in (record.pathname or "")
            if from_open_clip:
                logger.debug("open_clip: %s", record.getMessage())
            return not (from_open_clip and record.levelno <= logging.WARNING)

    root = logging.getLogger()
    drop = _DropOpenClip()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


#: ``torch.nn.init`` functions a model's constructor calls to draw its random initial weights.
_INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)


@contextmanager
def without_random_init() -> Iterator[None]:
    """Build modules without drawing random initial weights (``torch.nn.init`` made no-ops).

    Only for a model whose every parameter is then loaded strictly (a missing
    key is an error, :func:`load_weights_strict`): the random draws would be
    overwritten anyway, and for ViT-B-32 they are most of the build's time.
    Buffers computed in constructors (attention masks) are not drawn through
    ``torch.nn.init`` and are built as usual.
    """
    import torch

    init = torch.nn.init
    saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}

    def keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    for name in saved:
        setattr(init, name, keep)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


@contextmanager
def initial_weights(*, draw: bool) -> Iterator[None]:
    """Build modules with the usual random initial weights, seeded with 0 (``draw``), or with none drawn.

    Seeded draws make every process build the same model (a resumed run or a later
    question of the result agrees); without draws see :func:`without_random_init`.
    Either way the caller's random generator is left as it was (constructors also
    draw with ``torch.randn`` directly, e.g. positional embeddings).
    """
    import torch

    with torch.random.fork_rng(devices=[]), (nullcontext() if draw else without_random_init()):
        torch.manual_seed(0)
        yield


#: Strict loading lives with the open_clip encoder; the zoo uses the same function.
load_weights_strict = load_checkpoint_strict


def read_open_clip_config(folder: Path) -> dict[str, Any]:
    """``open_clip_config.json`` of ``folder``; ModelError when absent or invalid."""
    path = folder / "open_clip_config.json"
    if not path.is_file():
        raise ModelError(
            f"{folder} is not an open_clip model folder ({path.name} is missing); "
            "point at the folder holding open_clip_config.json and the weights"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); re-download the model folder") from exc
    if not isinstance(config, dict) or "model_cfg" not in config:
        raise ModelError(f"{path} has no model_cfg; it is not an open_clip config, re-download the model folder")
    return config


def find_weights(folder: Path) -> Path:
    """The open_clip weights file in ``folder`` (safetensors preferred)."""
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(
        f"{folder} holds no open_clip weights ({' or '.join(WEIGHT_NAMES[:3])}); copy the model's weights there"
    )


def _is_text_tower_config(path: Path) -> bool:
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(model_type) and model_type != "clip"


def _text_tower_source(
    folder: Path, hf_name: str, text_config: Mapping[str, Any] | None
) -> tuple[Path | None, Mapping[str, Any] | None]:
    """Where the HF text tower's config comes from: a folder, a shipped dict, or the hub (None, None)."""
    if (folder / "config.json").is_file() and _is_text_tower_config(folder / "config.json"):
        return folder, None
    if Path(hf_name).expanduser().is_dir():
        return Path(hf_name).expanduser(), None
    shipped = text_config or known_text_config(hf_name)
    return None, shipped


def create_folder_model(
    folder: Path,
    config: Mapping[str, Any],
    text_config: Mapping[str, Any] | None = None,
    *,
    random_weights: bool = False,
) -> Any:
    """The open_clip model ``folder``'s config describes, built offline.

    By default no initial weights are drawn: the parameters hold whatever memory
    they were given (possibly NaN) and must be loaded next, strictly
    (:func:`build_from_folder`). ``random_weights=True`` draws the usual random
    initial weights instead, seeded with 0 (tests and benchmarks of the
    architecture).

    A Hugging Face text tower is built from a ``config.json`` next to the open_clip
    config, a local ``hf_model_name`` folder, or a shipped config
    (``text_config`` or :mod:`rsgeo.zoo.text_configs`); only for other towers
    does transformers look in its cache or on the hub.
    """
    import open_clip

    text_cfg = dict(config["model_cfg"].get("text_cfg", {}))
    hf_name = text_cfg.get("hf_model_name")
    source_ctx: Any = nullcontext(None)
    if hf_name:
        tower_dir, shipped = _text_tower_source(folder, hf_name, text_config)
        if tower_dir is not None:
            source_ctx = nullcontext(tower_dir)
        elif shipped is not None:
            source_ctx = text_config_folder(dict(shipped))
    with source_ctx as tower_dir:
        kwargs: dict[str, Any] = {}
        if tower_dir is not None:
            kwargs["text_cfg"] = {**text_cfg, "hf_model_name": str(tower_dir), "hf_model_pretrained": False}
        try:
            # Unless asked for random weights, every parameter is loaded strictly next: no draws.
            with quiet_open_clip(), initial_weights(draw=random_weights):
                return open_clip.create_model(
                    f"local-dir:{folder}",
                    load_weights=False,
                    pretrained_text=False,
                    pretrained_image=False,
                    device="cpu",
                    **kwargs,
                )
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            hint = (
                f"; put the config.json of the text tower {hf_name!r} next to open_clip_config.json"
                if hf_name and tower_dir is None
                else "; check that the folder is a complete open_clip model"
            )
            raise ModelError(f"cannot build the open_clip model of {folder}: {_first_line(exc)}{hint}") from exc


def build_from_folder(
    folder: str | Path,
    *,
    weights: str | Path | None = None,
    model_id: str | None = None,
    languages: tuple[str, ...] | None = None,
    device: str | None = None,
    precision: str = "fp32",
    text_config: Mapping[str, Any] | None = None,
    expected_spec: ImageSpec | None = None,
) -> OpenClipEncoder:
    """An encoder from an open_clip folder, with no network access.

    Args:
        folder: Holds ``open_clip_config.json``, tokenizer files when the text
            tower is a Hugging Face model, and (unless ``weights``) the weights.
        weights: Weights file to use instead of the one in ``folder``.
        text_config: Config of the HF text tower when ``folder`` has none and
            rsgeo does not ship it under the name in ``hf_model_name``.
        expected_spec: The registry's input spec; a different published one
            is used (and logged).
    """
    import open_clip

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist; check the path")
    config = read_open_clip_config(folder)
    weights_path = Path(weights).expanduser() if weights else find_weights(folder)
    model = create_folder_model(folder, config, text_config)
    sha = load_weights_strict(model, weights_path)
    tokenizer = _folder_tokenizer(folder, config["model_cfg"].get("text_cfg", {}))
    spec = image_spec_from_open_clip(model)
    if expected_spec is not None and spec != expected_spec:
        logger.info("%s declares input %s; rsgeo's registry expected %s", folder, spec, expected_spec)
    if languages is None and isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer):
        languages = ("en",)  # CLIP's byte-pair vocabulary is English
    return OpenClipEncoder(
        model,
        tokenizer,
        image_spec=spec,
        identity=EncoderIdentity(model_id or f"local-dir:{folder}", sha, {"weights": weights_path.name}),
        device=device,
        precision=precision,
        languages=languages,
    )


def _folder_tokenizer(folder: Path, text_cfg: Mapping[str, Any]) -> Any:
    import open_clip

    hf_tok = text_cfg.get("hf_tokenizer_name")
    try:
        if hf_tok and not any((folder / name).is_file() for name in TOKENIZER_FILES):
            from open_clip.tokenizer import HFTokenizer

            logger.info("%s holds no tokenizer files; loading tokenizer %s", folder, hf_tok)
            return HFTokenizer(
                hf_tok,
                context_length=text_cfg.get("context_length", 77),
                **dict(text_cfg.get("tokenizer_kwargs", {})),
            )
        return open_clip.get_tokenizer(f"local-dir:{folder}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"cannot load the tokenizer of {folder}: {_first_line(exc)}; "
            f"copy the tokenizer files ({', '.join(TOKENIZER_FILES[:2])}) next to open_clip_config.json"
        ) from exc


def build_from_arch(
    arch: str,
    checkpoint: str | Path | None,
    *,
    model_id: str | None = None,
    languages: tuple[str, ...] | None = ("en",),
    device: str | None = None,
    precision: str = "fp32",
    image_spec: ImageSpec | None = None,
) -> OpenClipEncoder:
    """A built-in open_clip architecture with a state dict loaded strictly.

    ``checkpoint=None`` leaves random weights (tests, benchmarks).
    ``image_spec`` overrides the architecture's default input spec.
    """
    import open_clip

    if arch not in open_clip.list_models():
        raise ModelError(f"open_clip has no architecture {arch!r}; see open_clip.list_models() for the valid names")
    try:
        # Random weights (no checkpoint) are seeded; with a checkpoint, loaded strictly next, none are drawn.
        with quiet_open_clip(), initial_weights(draw=checkpoint is None):
            model = open_clip.create_model(arch, pretrained=None, device="cpu")
        tokenizer = open_clip.get_tokenizer(arch)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot build open_clip architecture {arch!r}: {_first_line(exc)}") from exc
    sha = load_weights_strict(model, checkpoint) if checkpoint is not None else None
    extra = {"architecture": arch}
    if checkpoint is not None:
        extra["checkpoint"] = Path(checkpoint).name
    return OpenClipEncoder(
        model,
        tokenizer,
        image_spec=image_spec or image_spec_from_open_clip(model),
        identity=EncoderIdentity(model_id or f"arch:{arch}", sha, extra),
        device=device,
        precision=precision,
        languages=languages,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
