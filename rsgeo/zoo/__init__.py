"""The model zoo: published remote-sensing CLIP models, loaded the way they are published.

* :mod:`rsgeo.zoo.registry` — one record per model (files, pinned revision,
  checksum, architecture, input spec, templates, languages);
* :mod:`rsgeo.zoo.hub` — the weights cache, first-use downloads, offline errors;
* :mod:`rsgeo.zoo.openclip_build` — strict open_clip builds from folders and checkpoints;
* :mod:`rsgeo.zoo.loading` — model name → encoder (:func:`load_encoder`);
* :mod:`rsgeo.zoo.templates` — prompt templates per model and language.

Importing this package is light (no torch, no network).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rsgeo.definitions.models import DEFAULT_MODEL
from rsgeo.zoo.registry import (
    MODELS,
    ModelRecord,
    WeightsFile,
    get_model,
    model_names,
    models_for_language,
)
from rsgeo.zoo.templates import default_templates, load_templates

if TYPE_CHECKING:
    from rsgeo.encoders.base import Encoder

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelRecord",
    "WeightsFile",
    "default_templates",
    "get_model",
    "load_encoder",
    "load_model",
    "load_templates",
    "model_names",
    "models_for_language",
]


def load_encoder(model: str = DEFAULT_MODEL, **kwargs: Any) -> Encoder:
    """Build the encoder ``model`` names; see :func:`rsgeo.zoo.loading.load_encoder`."""
    from rsgeo.zoo.loading import load_encoder as load

    return load(model, **kwargs)


def load_model(name: str, **kwargs: Any) -> Encoder:
    """Shortcut for :func:`rsgeo.zoo.loading.load_registered`."""
    from rsgeo.zoo.loading import load_registered

    return load_registered(name, **kwargs)
