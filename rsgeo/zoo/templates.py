"""Prompt templates: per-model defaults, per-language generic ones, user files.

A template holds one ``{}`` where the class name goes. Class embeddings are
averaged over all templates (and synonyms) of a class, see
:func:`rsgeo.prompts.class_text_embeddings`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsgeo.encoders.base import Encoder
from rsgeo.errors import OptionError
from rsgeo.prompts import DEFAULT_TEMPLATES, validate_templates
from rsgeo.zoo.registry import ModelRecord, find_model

#: Generic remote-sensing templates per language ("a satellite photo of {}.").
GENERIC_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": DEFAULT_TEMPLATES,
    "pt": ("uma foto de satélite de {}.", "uma imagem aérea de {}."),
    "es": ("una foto satelital de {}.", "una imagen aérea de {}."),
    "fr": ("une photo satellite de {}.", "une image aérienne de {}."),
    "de": ("ein Satellitenfoto von {}.", "ein Luftbild von {}."),
    "nl": ("een satellietfoto van {}.", "een luchtfoto van {}."),
    "it": ("una foto satellitare di {}.", "un'immagine aerea di {}."),
    "zh": ("{}的卫星照片。", "{}的航拍图像。"),
    "ko": ("{}의 위성 사진.", "{}의 항공 사진."),
    "ru": ("спутниковый снимок: {}.", "аэрофотоснимок: {}."),
}


def record_templates(record: ModelRecord | None, lang: str | None = None) -> tuple[str, ...]:
    """A model's default templates in ``lang`` (English when ``None``).

    The record's own templates come first; without them, rsgeo's generic
    templates of that language; without those, the English ones.
    """
    lang = (lang or "en").lower()
    if record is not None and lang in record.templates:
        return record.templates[lang]
    if lang in GENERIC_TEMPLATES:
        return GENERIC_TEMPLATES[lang]
    return DEFAULT_TEMPLATES


def default_templates(encoder: Encoder | str | None = None, lang: str | None = None) -> tuple[str, ...]:
    """The default templates for an encoder (or a model name) in ``lang``.

    An encoder built by the zoo carries its record's templates
    (:attr:`~rsgeo.encoders.base.Encoder.templates`); other encoders are looked
    up by ``identity.model_id`` in the registry; unknown models (and no
    encoder) get the generic templates of ``lang``.
    """
    if isinstance(encoder, str):
        return record_templates(find_model(encoder), lang)
    if encoder is None:
        return record_templates(None, lang)
    if encoder.templates is not None:
        return tuple(encoder.templates(lang))
    return record_templates(find_model(encoder.identity.model_id), lang)


def load_templates(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Templates from a text file: one per line, ``#`` starts a comment.

    Raises:
        OptionError: the file is missing, empty, or a line lacks exactly one ``{}``.
    """
    p = Path(path)
    if not p.is_file():
        raise OptionError(f"templates file {p} does not exist; give a text file with one template per line")
    lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    templates = [line for line in lines if line and not line.startswith("#")]
    if not templates:
        raise OptionError(f"templates file {p} holds no template; write one per line, e.g. a satellite photo of {{}}.")
    return validate_templates(templates)


def templates_or_default(templates: Sequence[str] | None, encoder: Any, lang: str | None) -> tuple[str, ...]:
    """User templates when given (validated), else the encoder's defaults."""
    if templates:
        return validate_templates(templates)
    return default_templates(encoder, lang)
