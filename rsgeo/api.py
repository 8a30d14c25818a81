"""The Python API: ``embed``, ``classify``, ``query`` and ``open_result``.

These are what the CLI, notebooks and the QGIS plugin call. Each accepts a
scene (GeoTIFF or anything GDAL reads) or, for ``classify``/``query``, a result
GeoPackage whose stored embeddings then answer without reading pixels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import QuerySpec, example_tiles, landcover_plan, query_layer_name, query_plan, query_vector
from rsgeo.encoders.base import Encoder
from rsgeo.errors import OptionError
from rsgeo.grid import ChipGrid
from rsgeo.pipeline import CancelCheck, ProgressCallback, RunOptions, run
from rsgeo.prompts import build_prompts, class_text_embeddings, validate_class_names, validate_templates
from rsgeo.scene import ReadOptions
from rsgeo.store import EmbeddingSource

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
    command: str = "embed",
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
    layer: str = "landcover",
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    command: str = "classify",
) -> Path:
    """Zero-shot land cover: a ``landcover`` layer with one score per class."""
    if (classes is None) == (class_set is None):
        raise OptionError('give the classes with --classes "forest,water,..." or --class-set NAME (one of the two)')
    if not layer.strip():
        raise OptionError("--layer must not be blank")
    names, prompt_groups, colours, set_meta = resolve_classes(classes, class_set, templates, lang)

    def questions(encoder: Encoder, grid: ChipGrid, store: EmbeddingSource, taken: list[str]) -> list[Any]:
        groups = prompt_groups(encoder)
        class_emb = class_text_embeddings(encoder, groups)
        meta = {**set_meta, "prompts": groups, "logit_scale": encoder.logit_scale}
        return [
            landcover_plan(
                grid, store, name=layer, class_names=names, class_embeddings=class_emb,
                logit_scale=encoder.logit_scale, meta=meta, colours=colours,
            )
        ]

    return run(source, output, questions, read=read, options=options, progress=progress, cancel=cancel, command=command)


def resolve_classes(
    classes: Sequence[str] | None,
    class_set: str | None,
    templates: Sequence[str] | None,
    lang: str | None,
) -> tuple[list[str], Any, dict[str, str] | None, dict[str, Any]]:
    """Class names, a function encoder → prompt groups, colours and metadata."""
    user_templates = validate_templates(templates) if templates is not None else None
    if class_set is not None:
        from rsgeo.classsets import load_class_set  # the model zoo's class sets

        cs = load_class_set(class_set, lang=lang)
        names = list(cs.names)
        colours = getattr(cs, "colours", None)

        def groups(encoder: Encoder) -> list[list[str]]:
            tmpl = user_templates or model_templates(encoder, lang)
            return cs.prompts(tmpl)

        return names, groups, colours, {"class_set": class_set, "lang": lang}
    names = validate_class_names(classes or [])

    def plain_groups(encoder: Encoder) -> list[list[str]]:
        from rsgeo.language import warn_if_unsupported

        warn_if_unsupported(encoder, names, lang=lang)
        return build_prompts(names, user_templates or model_templates(encoder, lang))

    return names, plain_groups, None, {"class_set": None, "lang": lang}


def model_templates(encoder: Encoder, lang: str | None = None) -> tuple[str, ...]:
    """The model's published templates in ``lang`` (the registry's), else generic ones."""
    from rsgeo.zoo.templates import default_templates

    return default_templates(encoder, lang)


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
    command: str = "query",
) -> Path:
    """Free-text (and example) queries: one ``query_<slug>`` layer per query.

    ``texts`` makes one query per text; ``queries`` gives full specs (texts
    combined with example tiles). Both may be given.
    """
    specs = [QuerySpec(texts=(t,), top_k=top_k, threshold=threshold) for t in texts]
    specs += list(queries or [])
    if not specs:
        raise OptionError('give at least one query with --text "..." (or example tiles)')

    def questions(encoder: Encoder, grid: ChipGrid, store: EmbeddingSource, taken: list[str]) -> list[Any]:
        from rsgeo.language import warn_if_unsupported

        warn_if_unsupported(encoder, [t for spec in specs for t in spec.texts])
        plans = []
        names = list(taken)
        for spec in specs:
            text_emb = encoder.encode_texts(list(spec.texts)) if spec.texts else np.zeros((0, encoder.embedding_dim), np.float32)
            pos_ids = example_tiles(grid, spec.positive_tiles, spec.positive_locations, store.stored)
            neg_ids = example_tiles(grid, spec.negative_tiles, spec.negative_locations, store.stored)
            _, pos = store.get(pos_ids)
            _, neg = store.get(neg_ids)
            vector = query_vector(text_emb, pos, neg)
            name = query_layer_name(spec, [n for n in names if n not in taken])
            names.append(name)
            plans.append(query_plan(grid, store, name=name, spec=spec, vector=vector, meta={"query": spec.label()}))
        return plans

    return run(source, output, questions, read=read, options=options, progress=progress, cancel=cancel, command=command)
