"""Class embeddings: every prompt of a class embedded, averaged, re-normalised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsgeo.classsets.classset import ClassSet


def text_embeddings_for_classes(
    encoder: Any,
    class_set: ClassSet,
    templates: Sequence[str] | None = None,
    *,
    lang: str | None = None,
    synonyms: bool = True,
) -> np.ndarray:
    """One unit vector per class of ``class_set`` (``float32``, ``(C, D)``).

    Each class is embedded through every template × every term (its name and,
    with ``synonyms``, its synonyms), in the class set's language (or ``lang``);
    the embeddings are averaged and re-normalised. ``templates=None`` uses the
    model's defaults for that language (:func:`rsgeo.zoo.templates.default_templates`).
    A language the model cannot read is logged as a warning naming a model
    that can (:func:`rsgeo.language.warn_if_unsupported`).
    """
    from rsgeo.language import warn_if_unsupported
    from rsgeo.prompts import class_text_embeddings
    from rsgeo.zoo.templates import templates_or_default

    cs = class_set.in_language(lang) if lang is not None else class_set
    chosen = templates_or_default(templates, encoder, cs.lang)
    warn_if_unsupported(encoder, [t for terms in cs.prompt_names() for t in terms], lang=cs.lang)
    return class_text_embeddings(encoder, cs.prompts(chosen, synonyms=synonyms))
