"""The Python API: ``embed``, ``classify``, ``query`` (and ``open_result`` in :mod:`rsgeo.results`).

These are what the CLI, notebooks and the QGIS plugin call. Each accepts a
scene (GeoTIFF or anything GDAL reads) or, for ``classify``/``query``, a result
GeoPackage whose stored embeddings then answer without reading pixels. The
questions themselves are :mod:`rsgeo.questions`; the run is :mod:`rsgeo.pipeline`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from rsgeo.answers import QuerySpec
from rsgeo.definitions.schema import LANDCOVER_LAYER
from rsgeo.options import CancelCheck, ProgressCallback, RunOptions
from rsgeo.pipeline import run
from rsgeo.questions import ClassChoice, LandcoverQuestion, QueryQuestion
from rsgeo.scene import ReadOptions

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def embed(
    scene: PathLike,
    output: PathLike,
    *,
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    command: str | Sequence[str] = "embed",
) -> Path:
    """Encode every chip of ``scene`` once; write the tiles and their embeddings."""
    return run(scene, output, None, read=read, options=options, progress=progress, cancel=cancel, command=command)


def classify(
    source: PathLike,
    output: PathLike | None = None,
    *,
    classes: Sequence[str] | None = None,
    class_set: str | None = None,
    templates: Sequence[str] | None = None,
    lang: str | None = None,
    layer: str = LANDCOVER_LAYER,
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    command: str | Sequence[str] = "classify",
) -> Path:
    """Zero-shot land cover: a ``landcover`` layer with one score per class."""
    choice = ClassChoice(
        classes=tuple(classes) if classes is not None else None, class_set=class_set,
        templates=tuple(templates) if templates is not None else None, lang=lang,
    )
    question = LandcoverQuestion(choice, layer)
    return run(source, output, [question], read=read, options=options, progress=progress, cancel=cancel,
               command=command)


def query(
    source: PathLike,
    output: PathLike | None = None,
    *,
    texts: Sequence[str] = (),
    queries: Sequence[QuerySpec] | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    command: str | Sequence[str] = "query",
) -> Path:
    """Free-text (and example) queries: one ``query_<slug>`` layer per query.

    ``texts`` makes one query per text; ``queries`` gives full specs (texts
    combined with example tiles). Both may be given.
    """
    specs = [QuerySpec(texts=(t,), top_k=top_k, threshold=threshold) for t in texts]
    specs += list(queries or [])
    question = QueryQuestion(tuple(specs))
    return run(source, output, [question], read=read, options=options, progress=progress, cancel=cancel,
               command=command)
