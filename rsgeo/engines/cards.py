"""A model's card: what an engine run needs of a model, kept in the cache, so a warm start builds no model.

An engine runs the image tower from an exported file; of the torch model it
needs only what the rest of rsgeo reads off an encoder (identity, input spec,
logit scale, width, languages, training extent) and what keys the export (the
weights' fingerprint, the tower's class). The first engine run of a model
writes these to a *card* in the engine cache; a later run of the same model,
loaded the same way, reads the card and starts without importing open_clip or
transformers or building the model (``rsgeo embed`` of a one-chip scene:
docs/benchmarks.md, "Start-up"). The torch model is built only if the run needs
it after all: a text to encode, or a batch shape not exported yet.

A card is found by its *load key* (:func:`rsgeo.zoo.load_keys.load_key`: the
model name as given, the ``--checkpoint``, the identity of every file they
point at, the versions that can change a loaded model); the zoo computes it,
this module only keeps the cards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from rsgeo.encoders.base import EncoderIdentity, ImageSpec
from rsgeo.engines.cache import write_atomic

logger = logging.getLogger(__name__)

#: Layout of a card file; another layout is ignored (the model is built and the card rewritten).
CARD_VERSION = 1
#: The folder of the cards inside the engine cache.
CARDS_FOLDER = "cards"


@dataclass(frozen=True)
class ModelCard:
    """What :class:`~rsgeo.engines.encoder.EngineEncoder` takes from a torch encoder (see the module docstring)."""

    identity: EncoderIdentity
    image_spec: ImageSpec
    logit_scale: float
    embedding_dim: int
    languages: tuple[str, ...] | None
    training_extent_m: float | None
    #: Whether the encoder carried its registry record's templates (the loader gives them again).
    registry_templates: bool
    #: :func:`rsgeo.engines.export.weights_fingerprint` of the model.
    weights: str
    #: The image tower's class (part of the export key).
    tower: str

    def to_json(self) -> str:
        return json.dumps({"version": CARD_VERSION, **dataclasses.asdict(self)}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        if data.pop("version", None) != CARD_VERSION:
            raise ValueError("another card layout")
        spec = data["image_spec"]
        return cls(
            identity=EncoderIdentity(**data["identity"]),
            image_spec=ImageSpec(**{**spec, "mean": tuple(spec["mean"]), "std": tuple(spec["std"])}),
            logit_scale=float(data["logit_scale"]),
            embedding_dim=int(data["embedding_dim"]),
            languages=tuple(data["languages"]) if data["languages"] is not None else None,
            training_extent_m=data["training_extent_m"],
            registry_templates=bool(data["registry_templates"]),
            weights=str(data["weights"]),
            tower=str(data["tower"]),
        )


def card_path(cache: Path, key: str) -> Path:
    return cache / CARDS_FOLDER / f"{key}.json"


def read_card(cache: Path, key: str) -> ModelCard | None:
    """The card of ``key`` in ``cache``, or ``None`` (none yet, unreadable or of another layout)."""
    path = card_path(cache, key)
    try:
        card = ModelCard.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.info("ignoring the model card %s (%s); the model is built", path, exc)
        return None
    logger.info("model card %s: the model is built only if the run needs it", path)
    return card


def write_card(cache: Path, key: str, card: ModelCard) -> None:
    """Write ``card`` under ``key`` atomically; a cache that cannot be written costs only the next warm start."""
    path = card_path(cache, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = card.to_json()
        write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:
        logger.warning("could not write the model card %s (%s); the next run builds the model again", path, exc)
