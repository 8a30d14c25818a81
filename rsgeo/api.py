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
    """Encode every chip of ``scene`` once; write the tiles and their embeddings.

    Later questions (:func:`classify`, :func:`query`, :func:`rsgeo.results.open_result`)
    are answered from the stored embeddings without reading the scene again.

    Args:
        scene: a GeoTIFF or anything GDAL reads (a path, ``/vsis3/...``, ``https://...``).
        output: the result GeoPackage to write.
        read: how chips are cut and scaled.
        options: the model and how it runs.
        progress: called as ``progress(done, total)`` after each batch.
        cancel: polled between batches; returning ``True`` stops the run (its journal is kept).
        command: the command line recorded in the result's metadata.

    Returns:
        The path of the GeoPackage written.

    Raises:
        RsgeoError: for any input mistake (the message says what to do).
    """
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
    """Zero-shot land cover: a ``landcover`` layer with one score per class.

    Args:
        source: a scene (encoded first), or a result GeoPackage whose stored
            embeddings answer without reading pixels.
        output: where to write; ``None`` with a result adds the layer to it.
        classes: class names; give these or ``class_set``.
        class_set: a built-in class set (``rsgeo models --class-sets``) or a YAML/CSV file.
        templates: prompt templates with ``{}`` for the class (default: the model's).
        lang: language of the class names, for class sets with names per language.
        layer: name of the layer written.
        read: how chips are cut and scaled (a scene only).
        options: the model and how it runs.
        progress: called as ``progress(done, total)`` after each batch.
        cancel: polled between batches; returning ``True`` stops the run.
        command: the command line recorded in the result's metadata.

    Returns:
        The path of the GeoPackage written.
    """
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

    Args:
        source: a scene (encoded first), or a result GeoPackage.
        output: where to write; ``None`` with a result adds the layers to it.
        texts: one query per text.
        queries: full query specs (texts and example tiles or locations).
        top_k: keep only the ``top_k`` best tiles of each text query.
        threshold: keep only tiles with a cosine similarity of at least this.
        read: how chips are cut and scaled (a scene only).
        options: the model and how it runs.
        progress: called as ``progress(done, total)`` after each batch.
        cancel: polled between batches; returning ``True`` stops the run.
        command: the command line recorded in the result's metadata.

    Returns:
        The path of the GeoPackage written.
    """
    specs = [QuerySpec(texts=(t,), top_k=top_k, threshold=threshold) for t in texts]
    specs += list(queries or [])
    question = QueryQuestion(tuple(specs))
    return run(source, output, [question], read=read, options=options, progress=progress, cancel=cancel,
               command=command)
