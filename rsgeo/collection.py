"""Many results taken together: an *archive* of encoded scenes (issue 21, docs/archive.md).

``rsgeo query A.gpkg B.gpkg ...`` and ``rsgeo export`` read several results
as one collection. This module finds them (files, glob patterns, folders),
names each (the ``scene`` column), refuses a collection whose embeddings
cannot be compared (made by different models), and picks the one CRS the
answer is written in (the merged file's rule, :func:`rsgeo.batch.common_crs`).
Only metadata is read here: the embeddings are streamed by the callers.
"""

from __future__ import annotations

import glob
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsgeo.definitions import schema
from rsgeo.errors import DamagedResultError, OptionError, ResultError, opt

logger = logging.getLogger(__name__)

#: File name ending taken as a result when a folder or pattern is given.
RESULT_SUFFIX = ".gpkg"
#: The model record's fields that must agree for embeddings to be comparable.
MODEL_FIELDS = ("model_id", "weights_sha256", "embedding_dim")


@dataclass(frozen=True)
class Member:
    """One result of a collection: its ``scene`` name, file and metadata (as read when listed)."""

    name: str
    path: Path
    metadata: dict[str, Any]

    @property
    def model(self) -> dict[str, Any]:
        model: dict[str, Any] = self.metadata[schema.KEY_MODEL]
        return model

    @property
    def crs_wkt(self) -> str | None:
        grid = self.metadata.get(schema.KEY_GRID) or {}
        return grid.get("crs") or None


def expand_results(inputs: Sequence[str | Path], *, exclude: Sequence[Path] = ()) -> list[Path]:
    """Result files from files, glob patterns and folders, in the order given, each once.

    A file given by name must be a result; in a folder or a pattern's matches,
    GeoPackages that are not rsgeo results (a merged file, an earlier answer)
    are skipped with a warning. ``exclude``: files a folder or pattern never
    contributes (the output, which may lie in the folder asked).
    """
    excluded = {p.resolve() for p in exclude}
    found: dict[Path, Path] = {}
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() == RESULT_SUFFIX)
            what = f"folder {text}"
        elif any(c in text for c in "*?[") and not path.exists():
            files = sorted(Path(f) for f in glob.glob(text, recursive=True)
                           if Path(f).is_file() and Path(f).suffix.lower() == RESULT_SUFFIX)
            what = f"pattern {text!r}"
        elif path.is_file():  # named: taken even when it is the output (the caller refuses that)
            found.setdefault(path.resolve(), path)
            continue
        else:
            raise ResultError(f"{text}: no such result, folder or pattern; check the path")
        kept = [f for f in files if f.resolve() not in excluded and _is_result(f)]
        if not kept:
            raise OptionError(f"the {what} holds no rsgeo result (looked for {RESULT_SUFFIX} files with embeddings)")
        for f in kept:
            found.setdefault(f.resolve(), f)
    return list(found.values())


def _is_result(path: Path) -> bool:
    try:
        schema.read_metadata_rows(path)
    except sqlite3.DatabaseError:
        logger.warning("%s is not an rsgeo result (no %s table): skipped", path, schema.METADATA_TABLE)
        return False
    return True


def result_names(paths: Sequence[Path]) -> list[str]:
    """The ``scene`` of each result: its file stem, made unique with its folder or a number."""
    from rsgeo.batch import scene_names

    return scene_names(list(paths))


def open_collection(inputs: Sequence[str | Path], *, exclude: Sequence[Path] = ()) -> list[Member]:
    """The results the inputs name, with their metadata, all made by one model (else one error line)."""
    paths = expand_results(inputs, exclude=exclude)
    if not paths:
        raise OptionError("give the results to read: result files, glob patterns or folders")
    members = []
    for name, path in zip(result_names(paths), paths):
        members.append(Member(name, path, _metadata(path)))
    check_one_model(members)
    return members


def _metadata(path: Path) -> dict[str, Any]:
    try:
        meta = schema.decode_metadata(schema.read_metadata_rows(path))
    except sqlite3.DatabaseError:
        raise ResultError(f"{path} is not an rsgeo result (no {schema.METADATA_TABLE} table); give result files "
                          "written by rsgeo embed/classify/query") from None
    except ValueError as exc:
        raise DamagedResultError(f"{path} is damaged: {exc}; encode its scene again") from None
    if meta.get(schema.KEY_RESULT_KIND) == schema.RESULT_KIND_ZONES:
        raise ResultError(f"{path} is a zones result (rsgeo embed --zones), not tiles; its zones layer is a GeoPackage "
                          "layer already: read it with GDAL/QGIS, or answer it with rsgeo classify/query")
    for key in (schema.KEY_MODEL, schema.KEY_GRID, schema.KEY_EMBEDDINGS):
        if not isinstance(meta.get(key), dict):
            raise DamagedResultError(f"{path} is damaged: its metadata has no {key!r} record; encode its scene again")
    return meta


def model_key(model: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree between two results for their embeddings to be compared."""
    return tuple(model.get(f) for f in MODEL_FIELDS)


def describe_model(model: dict[str, Any]) -> str:
    sha = model.get("weights_sha256")
    return f"{model.get('model_id')!r}" + (f" (weights {str(sha)[:12]}…)" if sha else "") + \
        f", {model.get('embedding_dim')}-d"


def check_one_model(members: Sequence[Member]) -> None:
    """Refuse a collection made by more than one model: their embeddings live in different spaces."""
    if not members:
        return
    first = members[0]
    for other in members[1:]:
        if model_key(other.model) != model_key(first.model):
            raise ResultError(
                f"{other.path.name} was encoded with {describe_model(other.model)}, {first.path.name} with "
                f"{describe_model(first.model)}: one query compares embeddings of one model only; query them "
                f"separately, or encode {other.path.name}'s scene again with {opt('model', first.model.get('model_id'))}"
            )


def target_crs(members: Sequence[Member], crs: Any = None) -> Any:
    """The CRS a collection's answer is written in (``pyproj.CRS``): ``crs``, else the results' common
    CRS, else EPSG:4326, as the merged file of ``rsgeo batch --merge`` is."""
    from rsgeo.batch import common_crs

    wkts = [m.crs_wkt for m in members]
    if any(w is None for w in wkts):
        missing = next(m for m in members if m.crs_wkt is None)
        raise ResultError(f"{missing.path.name} has no CRS; an archive answer needs georeferenced results")
    return common_crs(wkts, crs)
