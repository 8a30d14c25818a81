"""A model name → an :class:`~rsgeo.encoders.base.Encoder`.

:func:`load_encoder` reads any model name (see :mod:`rsgeo.definitions.models`:
``local-dir:PATH``, ``hf-hub:ORG/REPO``, ``arch:ARCH``, ``hf-clip:PATH``,
``test:NAME``, or a registry name); :func:`load_registered` loads registry
models, transformers CLIP folders and model folders given by path.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

from rsgeo.definitions.models import DEFAULT_MODEL, ModelName
from rsgeo.encoders.base import Encoder, TemplatesFor
from rsgeo.errors import ModelError, opt
from rsgeo.zoo.hub import cache_root, fetch_files, verify_sha256
from rsgeo.zoo.registry import ModelRecord, find_model, get_model
from rsgeo.zoo.templates import record_templates
from rsgeo.zoo.text_configs import known_text_config

HF_CLIP_PREFIX = "hf-clip:"


def load_encoder(
    model: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    precision: str = "fp32",
    checkpoint: str | Path | None = None,
    cache_dir: str | None = None,
    engine: str = "auto",
) -> Encoder:
    """Build the encoder ``model`` names (see the module docstring).

    ``engine`` runs the image tower (``auto``, ``torch``, ``onnxruntime``,
    ``openvino``; see :mod:`rsgeo.engines.choice`); exported engine files are
    kept in the weights cache (``cache_dir``), next to the weights.
    """
    from rsgeo.definitions.schema import ENGINE_CACHE_FOLDER
    from rsgeo.engines import choose, with_engine

    try:
        name = ModelName.parse(model)
    except ValueError as exc:
        raise ModelError(f"{exc}; `rsgeo models` lists the names") from None
    exportable = name.scheme != "test"
    if device is None and exportable:
        from rsgeo.encoders.torch_clip import default_device

        device = default_device()
    choice = choose(engine, precision, device=device or "cpu", exportable=exportable, model=str(name))
    if choice.engine == "torch":
        return _load_torch(name, device=device, precision=choice.precision, checkpoint=checkpoint, cache_dir=cache_dir)
    from rsgeo.engines.cards import read_card
    from rsgeo.engines.encoder import EngineEncoder
    from rsgeo.zoo.load_keys import load_key

    engines_cache = cache_root(cache_dir) / ENGINE_CACHE_FOLDER
    key = load_key(model, checkpoint)
    card = read_card(engines_cache, key) if key is not None else None
    if card is not None:  # a warm start: the torch model is built only if the run needs it
        def build() -> Any:
            return _load_torch(name, device=device, precision="fp32", checkpoint=checkpoint, cache_dir=cache_dir)

        record = find_model(card.identity.model_id) if card.registry_templates else None
        return EngineEncoder.from_card(
            card, build, engine=choice.engine, precision=choice.precision, cache=engines_cache,
            check_budget=choice.check_budget, templates=registry_templates(record) if record is not None else None,
        )
    encoder = _load_torch(name, device=device, precision="fp32", checkpoint=checkpoint, cache_dir=cache_dir)
    return with_engine(encoder, choice, engines_cache, card_key=key)


def _load_torch(
    name: ModelName, *, device: str | None, precision: str, checkpoint: str | Path | None, cache_dir: str | None
) -> Encoder:
    """The torch encoder ``name`` names."""
    if name.scheme == "test":
        from rsgeo.encoders.testing import HashEncoder, hash_encoder_options

        return HashEncoder(**hash_encoder_options(name.value))
    if name.scheme == "local-dir":
        folder = Path(name.value).expanduser().resolve()
        return load_open_clip_dir(folder, device=device, precision=precision, checkpoint=checkpoint)
    if name.scheme == "hf-hub":
        from rsgeo.encoders.openclip import OpenClipEncoder

        return OpenClipEncoder.from_name(
            str(name), device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint
        )
    if name.scheme == "arch":
        from rsgeo.zoo.openclip_build import build_from_arch

        return build_from_arch(name.value, checkpoint, model_id=str(name), device=device, precision=precision)
    return load_registered(str(name), device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint)


def load_registered(
    name: str,
    *,
    device: str | None = None,
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Encoder:
    """Load ``name``: a registry model, ``hf-clip:PATH``, or a model folder path.

    A plain folder path is recognised by its contents: ``config.json`` with
    ``model_type: clip`` (transformers) or ``open_clip_config.json`` (open_clip).

    Raises:
        ModelError: unknown name (the message lists the valid ones), files
            that do not match, or weights that cannot be fetched.
    """
    if name.startswith(HF_CLIP_PREFIX):
        return load_hf_clip(name[len(HF_CLIP_PREFIX) :], device=device, precision=precision)
    record = find_model(name)
    if record is not None:  # a registered name wins over a folder of that name (use ./NAME for the folder)
        return load_record(record, device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint)
    path = Path(name).expanduser()
    if path.is_dir():
        from rsgeo.encoders.hf_clip import is_hf_clip_folder

        if is_hf_clip_folder(path):
            return load_hf_clip(path, device=device, precision=precision)
        if (path / "open_clip_config.json").is_file():
            return load_open_clip_dir(path, device=device, precision=precision)
        raise ModelError(
            f"{path} is neither a transformers CLIP folder (config.json) nor an open_clip folder "
            f"(open_clip_config.json); point {opt('model')} at the model folder"
        )
    if not path.exists() and ("/" in name or "\\" in name):
        raise ModelError(
            f"{name} is neither a model folder nor a registered model; for a Hugging Face repo use "
            f"{opt('model', 'hf-hub:' + name)} (open_clip) or download it and pass the folder; `rsgeo models` lists the names"
        )
    if path.is_file():
        raise ModelError(
            f"{path} is a file; a state-dict checkpoint needs its architecture: "
            f"{opt('model', 'arch:ViT-B-32')} {opt('checkpoint', path)} (or the registry name, e.g. "
            f"{opt('model', 'remoteclip-vit-b-32')} {opt('checkpoint', path)})"
        )
    # Neither registered nor a path: get_model raises the error that lists the valid names.
    return load_record(get_model(name), device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint)


def registry_templates(record: ModelRecord) -> TemplatesFor:
    """The prompt templates an encoder of a registry model carries (a warm start's encoder too)."""
    return functools.partial(record_templates, record)


def load_record(
    record: ModelRecord,
    *,
    device: str | None = None,
    precision: str = "fp32",
    cache_dir: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Encoder:
    """Build a registry model, fetching its files on first use.

    ``checkpoint`` replaces the download: the weights file (checked against
    the published checksum when one is known) or, for models published as a
    folder, that folder.
    """
    encoder: Any
    if record.loader == "open_clip_checkpoint":
        from rsgeo.zoo.openclip_build import build_from_arch

        weights = _local_checkpoint(record, checkpoint) if checkpoint else fetch_files(record, cache_dir=cache_dir)[0]
        encoder = build_from_arch(
            record.architecture,
            weights,
            model_id=record.name,
            languages=record.languages,
            device=device,
            precision=precision,
            image_spec=record.image_spec,
        )
    elif record.loader == "open_clip_hub":
        from rsgeo.zoo.openclip_build import build_from_folder

        folder, hub_weights = _hub_folder(record, checkpoint, cache_dir)
        encoder = build_from_folder(
            folder,
            weights=hub_weights,
            model_id=record.name,
            languages=record.languages,
            device=device,
            precision=precision,
            text_config=known_text_config(record.text_config) if record.text_config else None,
            expected_spec=record.image_spec,
        )
    elif record.loader == "hf_clip":
        from rsgeo.encoders.hf_clip import HFClipEncoder, require_transformers

        require_transformers()  # before a 600 MB download, not after
        if checkpoint:
            folder = Path(checkpoint).expanduser()
        else:
            folder = fetch_files(record, cache_dir=cache_dir)[0].parent
        encoder = HFClipEncoder.from_folder(
            folder, model_id=record.name, device=device, precision=precision, languages=record.languages
        )
    else:  # pragma: no cover - the Loader literal lists every kind
        raise ModelError(f"model {record.name} has unknown loader {record.loader!r}")
    encoder.templates = registry_templates(record)
    encoder.training_extent_m = record.training_scale.extent_m if record.training_scale else None
    # Provenance stored with results: which revision of the published files.
    encoder.identity = dataclasses.replace(
        encoder.identity,
        extra={**encoder.identity.extra, "revision": "local --checkpoint" if checkpoint else (record.revision or "main")},
    )
    return encoder  # type: ignore[no-any-return]


def _local_checkpoint(record: ModelRecord, checkpoint: str | os.PathLike[str]) -> Path:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist; check the path given with {opt('checkpoint')}")
    try:
        verify_sha256(path, record.weights, model=record.name)
    except ModelError:
        raise ModelError(
            f"{path} is not the published {record.weights.filename} of {record.name} (SHA-256 differs); "
            f"to load another checkpoint of this architecture pass {opt('model', 'arch:' + record.architecture)} "
            f"{opt('checkpoint', path)}"
        ) from None
    return path


def _hub_folder(
    record: ModelRecord, checkpoint: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None
) -> tuple[Path, Path | None]:
    """The open_clip folder of a hub record and the weights file to load."""
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            return path, None
        if not path.is_file():
            raise ModelError(f"checkpoint {path} does not exist; check the path given with {opt('checkpoint')}")
        verify_sha256(path, record.weights, model=record.name)
        # A bare weights file: config and tokenizer still come from the cache (or the hub).
        rest = fetch_files(record, record.files[1:], cache_dir=cache_dir)
        return rest[0].parent, path
    paths = fetch_files(record, cache_dir=cache_dir)
    return paths[0].parent, paths[0]


def load_open_clip_dir(
    folder: str | os.PathLike[str],
    *,
    device: str | None = None,
    precision: str = "fp32",
    checkpoint: str | os.PathLike[str] | None = None,
) -> Encoder:
    """An open_clip folder (``--model local-dir:PATH``), loaded with no network access."""
    from rsgeo.zoo.openclip_build import build_from_folder

    folder = Path(folder).expanduser()
    weights = Path(checkpoint) if checkpoint is not None else None
    return build_from_folder(folder, weights=weights, model_id=f"local-dir:{folder}", device=device, precision=precision)


def load_hf_clip(folder: str | os.PathLike[str], *, device: str | None = None, precision: str = "fp32") -> Encoder:
    """A transformers CLIP folder (``--model hf-clip:PATH``); languages unknown."""
    from rsgeo.encoders.hf_clip import HFClipEncoder

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist; check the path given with {opt('model', 'hf-clip:PATH')}")
    return HFClipEncoder.from_folder(folder, model_id=f"hf-clip:{folder}", device=device, precision=precision, languages=("en",))
