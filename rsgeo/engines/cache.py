"""Exported engine files in the weights cache: one folder per export key, written atomically.

An export key is the SHA-256 of the fields that decide the file's bytes (model,
weights hash, tower, input size, batch shape, torch and opset for the ONNX
export; the engine's version and the precision for a derived file). The files
live under :data:`~rsgeo.definitions.schema.ENGINE_CACHE_FOLDER` in the folder
rsgeo keeps weights in (:func:`rsgeo.zoo.hub.cache_root`).

Several runs may export the same key at once (a batch, cluster workers on one
machine, two QGIS windows). Each writes its own uniquely named temporary file
beside the final one and renames it into place (``os.replace``: atomic on POSIX
and Windows), so a reader sees no file or a whole one, never a half-written one;
the last rename wins and the files are equivalent. :func:`rsgeo.gpkg.atomic_output`
is not reused: its temporary names are per process (two threads of one worker
would collide) and its messages speak of ``-o``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from rsgeo.definitions.schema import ENGINE_KEY_FILE
from rsgeo.errors import ModelError, opt

logger = logging.getLogger(__name__)

KeyFields = Mapping[str, str | int | float | None]


def key_of(fields: KeyFields) -> str:
    """The export key of ``fields``: a short hex digest of their sorted JSON."""
    text = json.dumps(dict(fields), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def key_folder(cache: Path, fields: KeyFields) -> Path:
    """The folder of ``fields``' export key inside ``cache`` (not created)."""
    return cache / key_of(fields)


def cached_file(
    folder: Path, name: str, make: Callable[[Path], None], fields: KeyFields | None = None
) -> tuple[Path, bool]:
    """``folder/name``, made with ``make(temporary_path)`` unless it exists.

    ``fields`` (the key's, for the first file of a key folder) are written
    beside it as JSON, for people looking into the cache. Returns the path and
    whether it was made now (``False``: reused).
    """
    final = folder / name
    if final.is_file():
        logger.info("reusing %s", final)
        return final, False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if fields is not None:
            text = json.dumps(dict(fields), indent=1, sort_keys=True)
            write_atomic(folder / ENGINE_KEY_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        write_atomic(final, make)
    except OSError as exc:
        raise ModelError(
            f"cannot write the exported model to {folder} ({exc.strerror or exc}); "
            f"point {opt('cache_dir')} at a writable folder"
        ) from exc
    logger.info("exported %s", final)
    return final, True


def write_atomic(path: Path, make: Callable[[Path], object]) -> None:
    """Make ``path`` through a unique temporary file beside it, renamed into place when complete."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        make(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
