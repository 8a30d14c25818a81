"""What a user asks of the embeddings: land-cover classes and queries, resolved for a model.

A fresh run, a stored result written to (``rsgeo classify scene.gpkg``) and a
result opened in memory (:func:`rsgeo.open_result`) all answer through these
objects: :class:`ClassChoice` turns class names or a class set into one unit
text embedding per class (:func:`class_embeddings`), :func:`query_vector_for`
turns a :class:`~rsgeo.answers.QuerySpec` into one unit query vector, and the
``*Question`` classes plan the layers a run writes from them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rsgeo.answers import (
    EmbeddingLookup,
    LayerPlan,
    QuerySpec,
    example_tiles,
    landcover_plan,
    query_layer_name,
    query_plan,
    query_vector,
)
from rsgeo.classsets.classset import ClassSet
from rsgeo.definitions.schema import LANDCOVER_LAYER, MAX_CLASSES, reserved_layer_reason
from rsgeo.encoders.base import Encoder
from rsgeo.errors import OptionError, opt
from rsgeo.grid import ChipGrid
from rsgeo.locate import parse_location
from rsgeo.prompts import (
    build_prompts,
    class_text_embeddings,
    validate_class_names,
    validate_templates,
)
from rsgeo.store import EmbeddingSource

logger = logging.getLogger(__name__)

#: Unit text embeddings ``(N, D)`` of texts (an encoder's, or a cache of them).
TextEmbedder = Callable[[Sequence[str]], np.ndarray]


_CLASSES_EXAMPLE = '"forest,water,..."'
_TEXT_EXAMPLE = '"..."'


@dataclass(frozen=True)
class ClassChoice:
    """The classes of a land-cover answer: names, or a class set, with optional templates.

    Give exactly one of ``classes`` (names, e.g. ``("forest", "water")``) and
    ``class_set`` (a built-in name, a YAML/CSV file, or a loaded
    :class:`~rsgeo.classsets.ClassSet`); ``templates`` override the model's
    published prompt templates, ``lang`` picks the language of a class set's
    names and of the default templates, ``synonyms`` whether a class set's
    synonyms join its prompts. Everything is checked (and a class set file
    read) when the choice is made, before any encoding.
    """

    classes: tuple[str, ...] | None = None
    class_set: str | ClassSet | None = None
    templates: tuple[str, ...] | None = None
    lang: str | None = None
    synonyms: bool = True
    _loaded: ClassSet | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.classes is None) == (self.class_set is None):
            raise OptionError(
                f"give the classes with {opt('classes', _CLASSES_EXAMPLE)} or {opt('class_set', 'NAME')} "
                "(one of the two)"
            )
        if self.templates is not None:
            object.__setattr__(self, "templates", validate_templates(self.templates))
        if isinstance(self.class_set, ClassSet):
            loaded = self.class_set.in_language(self.lang) if self.lang is not None else self.class_set
            object.__setattr__(self, "_loaded", loaded)
        elif self.class_set is not None:
            from rsgeo.classsets import load_class_set  # the model zoo's class sets

            object.__setattr__(self, "_loaded", load_class_set(self.class_set, lang=self.lang))
        else:
            object.__setattr__(self, "classes", tuple(validate_class_names(self.classes or ())))
        if len(self.names) > MAX_CLASSES:
            raise OptionError(
                f"{len(self.names)} classes do not fit in one GeoPackage layer (at most {MAX_CLASSES}: a layer holds "
                f"one column per class and SQLite allows 2000 columns); split them into several runs with "
                f"{opt('layer')} names of their own"
            )

    @property
    def names(self) -> list[str]:
        """The class names, in order."""
        return list(self._loaded.names) if self._loaded is not None else list(self.classes or ())

    @property
    def colours(self) -> list[str]:
        """An ``"r,g,b"`` per class, as the stored style colours them (the class set's legend,
        else the conventional colour of the name, else the palette)."""
        from rsgeo.definitions.colours import class_colours

        return class_colours(self.names, self._loaded.colours if self._loaded is not None else None)

    def resolve(self, encoder: Encoder) -> ResolvedClasses:
        """Class names, their prompts for ``encoder`` and their unit text embeddings.

        A class set's names are prompted in its language (its templates too,
        unless given); a language the model cannot read is logged as one
        warning naming a model that can (:func:`rsgeo.language.warn_if_unsupported`).
        """
        from rsgeo.language import warn_if_unsupported

        if self._loaded is not None:
            cs = self._loaded
            templates = self.templates or model_templates(encoder, cs.lang)
            warn_if_unsupported(encoder, [t for terms in cs.prompt_names(synonyms=self.synonyms) for t in terms],
                                lang=cs.lang)
            prompts = cs.prompts(templates, synonyms=self.synonyms)
            colours = cs.colours
            name = self.class_set if isinstance(self.class_set, str) else cs.name
            meta: dict[str, Any] = {"class_set": name, "lang": self.lang}
        else:
            templates = self.templates or model_templates(encoder, self.lang)
            warn_if_unsupported(encoder, self.names, lang=self.lang)
            prompts = build_prompts(self.names, templates)
            colours = None
            meta = {"class_set": None, "lang": self.lang}
        return ResolvedClasses(self.names, prompts, class_text_embeddings(encoder, prompts), colours, meta)


@dataclass(frozen=True)
class ResolvedClasses:
    """A :class:`ClassChoice` made concrete for one model."""

    names: list[str]
    prompts: list[list[str]]
    #: One unit vector per class, ``float32`` ``(C, D)``.
    embeddings: np.ndarray
    colours: dict[str, str] | None
    meta: dict[str, Any] = field(default_factory=dict)


def class_embeddings(encoder: Encoder, choice: ClassChoice) -> ResolvedClasses:
    """The one way rsgeo embeds classes: every prompt of a class, averaged and re-normalised."""
    return choice.resolve(encoder)


def model_templates(encoder: Encoder, lang: str | None = None) -> tuple[str, ...]:
    """The model's published templates in ``lang`` (the registry's), else generic ones."""
    from rsgeo.zoo.templates import default_templates

    return default_templates(encoder, lang)


def query_vector_for(spec: QuerySpec, *, embed_texts: TextEmbedder, dim: int, grid: ChipGrid,
                     source: EmbeddingLookup) -> np.ndarray:
    """The unit query vector of ``spec``: its texts and its example tiles (by id or location)."""
    text_emb = embed_texts(list(spec.texts)) if spec.texts else np.zeros((0, dim), np.float32)
    pos_ids = example_tiles(grid, spec.positive_tiles, spec.positive_locations, source.stored)
    neg_ids = example_tiles(grid, spec.negative_tiles, spec.negative_locations, source.stored)
    _, pos = source.get(pos_ids)
    _, neg = source.get(neg_ids)
    return query_vector(text_emb, pos, neg)


def check_layer_name(name: str) -> str:
    """``name`` if a result layer may take it, else one :class:`OptionError` line saying why."""
    reason = reserved_layer_reason(name)
    if reason is not None:
        raise OptionError(f"{opt('layer')} {name!r} cannot be used: {reason}; choose another layer name")
    return name


class Question(Protocol):
    """Something a run answers from embeddings, as layers to write."""

    def plans(self, encoder: Encoder, grid: ChipGrid, store: EmbeddingSource, taken: list[str]) -> list[LayerPlan]:
        """The layers answering it (``taken``: the result's layer names already in use)."""
        ...


@dataclass(frozen=True)
class LandcoverQuestion:
    """Zero-shot land cover: one layer with a score per class."""

    choice: ClassChoice
    layer: str = LANDCOVER_LAYER

    def __post_init__(self) -> None:
        if not self.layer.strip():
            raise OptionError(f"{opt('layer')} must not be blank")
        check_layer_name(self.layer)

    def plans(self, encoder: Encoder, grid: ChipGrid, store: EmbeddingSource, taken: list[str]) -> list[LayerPlan]:
        classes = class_embeddings(encoder, self.choice)
        meta = {**classes.meta, "prompts": classes.prompts, "logit_scale": encoder.logit_scale}
        return [
            landcover_plan(
                grid, store, name=self.layer, class_names=classes.names, class_embeddings=classes.embeddings,
                logit_scale=encoder.logit_scale, meta=meta, colours=classes.colours,
            )
        ]


@dataclass(frozen=True)
class QueryQuestion:
    """Queries by text and example: one ``query_<slug>`` layer per spec."""

    specs: tuple[QuerySpec, ...]

    def __post_init__(self) -> None:
        if not self.specs:
            raise OptionError(f"give at least one query with {opt('text', _TEXT_EXAMPLE)} (or example tiles)")
        for spec in self.specs:
            if spec.name is not None:
                if not spec.name.strip():
                    raise OptionError(f"{opt('layer')} must not be blank")
                check_layer_name(spec.name)
            for location in (*spec.positive_locations, *spec.negative_locations):
                parse_location(location)  # read now: a typo costs no encoding

    def plans(self, encoder: Encoder, grid: ChipGrid, store: EmbeddingSource, taken: list[str]) -> list[LayerPlan]:
        from rsgeo.language import warn_if_unsupported

        warn_if_unsupported(encoder, [t for spec in self.specs for t in spec.texts])
        plans = []
        names = list(taken)
        for spec in self.specs:
            vector = query_vector_for(spec, embed_texts=encoder.encode_texts, dim=encoder.embedding_dim, grid=grid,
                                      source=store)
            name = query_layer_name(spec, [n for n in names if n not in taken])
            names.append(name)
            plans.append(query_plan(grid, store, name=name, spec=spec, vector=vector, meta={"query": spec.label()}))
        return plans
