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

A card is found by its *load key*: the model name as given, the ``--checkpoint``,
the size, mtime and inode of every file the name or the checkpoint points at
(a weights file, a model folder's files), and the versions of rsgeo, torch,
open_clip and transformers. A changed file, another version or another
checkpoint is another key: the model is built and a new card written. Names
whose weights may change without a local file changing have no card: an
``hf-hub:`` repo (it follows the hub), a registry model whose revision is not
pinned, ``test:`` models (nothing to export).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from rsgeo.definitions.models import ModelName
from rsgeo.encoders.base import EncoderIdentity, ImageSpec
from rsgeo.engines.cache import write_atomic
from rsgeo.version import __version__

logger = logging.getLogger(__name__)

#: Layout of a card file; another layout is ignored (the model is built and the card rewritten).
CARD_VERSION = 1
#: The folder of the cards inside the engine cache.
CARDS_FOLDER = "cards"
#: Distributions whose versions can change what a loaded model is.
_VERSIONED = ("torch", "open_clip_torch", "transformers")


@dataclass(frozen=True)
class ModelCard:
    """What :class:`~rsgeo.engines.encoder.EngineEncoder` takes from a torch encoder (see the module docstring)."""

    identity: EncoderIdentity
    image_spec: ImageSpec
    logit_scale: float
    embedding_dim: int
    languages: tuple[str, ...] | None
    training_extent_m: float | None
    #: Whether the encoder carried its registry record's templates (rebuilt from the registry).
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


def _file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _identities(path: Path) -> list[dict[str, Any]] | None:
    """The identity of a file, or of every file directly in a folder; ``None`` when ``path`` is neither."""
    path = path.expanduser()
    if path.is_file():
        return [_file_identity(path)]
    if path.is_dir():
        return [_file_identity(p) for p in sorted(path.iterdir()) if p.is_file()]
    return None


def _dist_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def load_key(model: str, checkpoint: str | os.PathLike[str] | None) -> str | None:
    """The load key of ``model`` loaded with ``checkpoint`` (see the module docstring); ``None``: no card."""
    from rsgeo.zoo.registry import find_model

    try:
        name = ModelName.parse(model)
    except ValueError:
        return None
    fields: dict[str, Any] = {"model": name.canonical(), "rsgeo": __version__,
                              **{dist: _dist_version(dist) for dist in _VERSIONED}}
    files: list[dict[str, Any]] = []
    if checkpoint is not None:
        found = _identities(Path(checkpoint))
        if found is None:
            return None  # the load fails with its own message
        files += found
    if name.scheme in ("test", "hf-hub"):
        return None
    if name.is_path:
        found = _identities(Path(name.value))
        if found is None:
            return None
        files += found
    elif name.scheme == "registry":
        record = find_model(name.value)
        if record is None:  # a model folder given by its path
            found = _identities(Path(name.value))
            if found is None:
                return None
            files += found
        elif checkpoint is None:
            if any(f.revision is None for f in record.files):
                return None  # follows the hub's main branch
            fields["files"] = [dataclasses.asdict(f) for f in record.files]
    fields["local_files"] = files
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:32]


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
