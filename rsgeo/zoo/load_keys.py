"""The load key of a model: what decides the encoder a model name loads as, for its card (issue 16).

A model's card (:mod:`rsgeo.engines.cards`) lets an engine run start without
building the model; it is found by this key: the model name as given, the
``--checkpoint``, the size, mtime and inode of every file the name or the
checkpoint points at (a weights file, a model folder's files), the pinned
files of a registry model, and the versions of rsgeo, torch, open_clip and
transformers. A changed file, another version or another checkpoint is
another key: the model is built and a new card written. Names whose weights
may change without a local file changing have no key (no card): an ``hf-hub:``
repo (it follows the hub), a registry model whose revision is not pinned,
``test:`` models (nothing to export).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from rsgeo.definitions.models import ModelName
from rsgeo.version import __version__
from rsgeo.zoo.registry import find_model

#: Distributions whose versions can change what a loaded model is.
_VERSIONED = ("torch", "open_clip_torch", "transformers")


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
