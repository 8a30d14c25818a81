"""Prompts: class names and query texts turned into what the text tower reads.

Zero-shot classification embeds every class through a small ensemble of
templates ("a satellite photo of {}."), averages the embeddings over the
templates and re-normalises (Radford et al., 2021, the CLIP paper's prompt
ensembling). Free-text queries are embedded as written.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

from rsgeo.encoders.base import Encoder, l2_normalise
from rsgeo.errors import OptionError, opt

_CLASSES_EXAMPLE = '"forest,water,..."'

#: Generic remote-sensing templates, used when a model declares none.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a satellite photo of {}.",
    "an aerial photo of {}.",
    "a remote sensing image of {}.",
    "a satellite image showing {}.",
)


def parse_class_list(text: str) -> list[str]:
    """Split ``"forest, water"`` into names; empty, blank or duplicate names are errors."""
    names = [name.strip() for name in text.split(",")]
    return validate_class_names(names)


def validate_class_names(names: Sequence[str]) -> list[str]:
    names = [str(n).strip() for n in names]
    if not names or all(not n for n in names):
        raise OptionError(f"no class names given; pass {opt('classes', _CLASSES_EXAMPLE)} or {opt('class_set', 'NAME')}")
    if any(not n for n in names):
        raise OptionError(f"a class name is blank (two commas in a row?); remove it from {opt('classes')}")
    lowered = [n.casefold() for n in names]
    dupes = sorted({n for n in names if lowered.count(n.casefold()) > 1})
    if dupes:
        raise OptionError(f"class {dupes[0]!r} is given twice; give each class once")
    if len(names) < 2:
        raise OptionError(f"zero-shot classification needs at least two classes, got {names}")
    return list(names)


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    out = tuple(templates)
    if not out:
        raise OptionError("no prompt templates given")
    for t in out:
        problem = template_problem(t)
        if problem:
            raise OptionError(
                f"template {t!r} must contain exactly one {{}} where the class name goes ({problem}; "
                "write literal braces as {{ and }})"
            )
    return out


def template_problem(template: str) -> str | None:
    """What is wrong with a prompt template, or ``None``: it must hold one bare ``{}`` field, as str.format reads it."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:  # a stray { or }
        return f"it has a stray brace: {str(exc)[:1].lower()}{str(exc)[1:]}".replace("'", "")
    if len(fields) != 1:
        return f"it has {len(fields)} fields" if fields else "it has no {}"
    name, spec, conv = fields[0]
    if name not in ("", "0"):
        return f"the named field {{{name}}} would need a value rsgeo does not give"
    if spec or conv:
        return "the field has a format or conversion"
    return None


def build_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """Prompts per class: ``[[t.format(c) for t in templates] for c in classes]``."""
    return [[t.format(name) for t in templates] for name in class_names]


def class_text_embeddings(encoder: Encoder, prompts: Sequence[Sequence[str]]) -> np.ndarray:
    """One unit vector per class: prompt embeddings averaged and re-normalised."""
    flat = [p for group in prompts for p in group]
    emb = encoder.encode_texts(flat)
    out = np.zeros((len(prompts), emb.shape[1]), np.float32)
    i = 0
    for k, group in enumerate(prompts):
        out[k] = emb[i : i + len(group)].mean(axis=0)
        i += len(group)
    return l2_normalise(out)


def slug(text: str, *, limit: int = 40) -> str:
    """A lower-case identifier made of ``[a-z0-9_]`` (other letters kept if alphanumeric)."""
    s = re.sub(r"[^\w]+", "_", text.strip().casefold(), flags=re.UNICODE).strip("_")
    return (s[:limit].rstrip("_")) or "q"
