"""Class sets for zero-shot classification: built-in ones and user files.

Built-in (``rsgeo/data/classsets/*.yaml``): ``eurosat`` (10 classes),
``uc-merced`` (21), ``aid`` (30), ``nwpu-resisc45`` (45) and
``esa-worldcover`` (11); EuroSAT and WorldCover also in RS-M-CLIP's ten
languages. Users pass a name or a ``.yaml``/``.csv``/``.txt`` file::

    cs = load_class_set("eurosat", lang="pt")
    cs.names                     # ('terra de cultivo anual', 'floresta', ...)
    cs.prompts(templates)        # per class: every template x every name and synonym

Class embeddings are made in one place, :func:`rsgeo.questions.class_embeddings`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rsgeo.classsets.classset import ClassEntry, ClassSet, match_key
from rsgeo.classsets.files import class_set_from_data, read_class_set_file
from rsgeo.errors import OptionError, opt

__all__ = [
    "ClassEntry",
    "ClassSet",
    "builtin_class_set",
    "class_set_from_names",
    "list_class_sets",
    "load_class_set",
    "match_key",
]

_FILE_SUFFIXES = (".yaml", ".yml", ".csv", ".txt")


def _builtin_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "classsets"


@functools.cache
def _builtin_index() -> dict[str, str]:
    """``match_key(name or alias)`` → file stem of every built-in class set."""
    import yaml

    index: dict[str, str] = {}
    for path in sorted(_builtin_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key in (path.stem, data.get("name", ""), *(data.get("aliases") or [])):
            if key:
                index[match_key(str(key))] = path.stem
    return index


def list_class_sets() -> list[str]:
    """Names of the built-in class sets."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


@functools.cache
def builtin_class_set(name: str) -> ClassSet:
    """A built-in set by name or alias (``ucm``, ``resisc45``, ``worldcover``, ...), in English."""
    stem = _builtin_index().get(match_key(name))
    if stem is None:
        raise OptionError(
            f"unknown class set {name!r}; use one of {', '.join(list_class_sets())} "
            "or a .yaml/.csv/.txt file (see docs/models.md)"
        )
    return read_class_set_file(_builtin_dir() / f"{stem}.yaml")


def load_class_set(name_or_path: str | os.PathLike[str], lang: str | None = None) -> ClassSet:
    """A built-in class set or a user file, read in ``lang`` (``None`` = English).

    Raises:
        OptionError: unknown name (the message lists the built-in ones), a bad
            file, or a language the set has no names in.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in _FILE_SUFFIXES or path.exists():
        if path.is_dir():
            raise OptionError(f"class set {path} is a folder; give a .yaml, .csv or .txt file")
        cs = read_class_set_file(path)
    else:
        cs = builtin_class_set(text)
    return cs.in_language(lang)


def class_set_from_names(
    names: list[str], *, name: str = "classes", lang: str | None = None, ids: list[str] | None = None
) -> ClassSet:
    """A class set from plain names (``--classes "forest,water"``), written in ``lang``.

    ``ids`` are the dataset labels of the classes (default: the names).
    """
    labels = ids if ids is not None else names
    data = {"name": name, "classes": [{"id": i, "name": n} for i, n in zip(labels, names)]}
    cs = class_set_from_data(data, source=opt("classes"), default_name=name)
    if lang and lang.lower() != "en":
        # The names are already written in ``lang``: record them as that language's names.
        entries = tuple(
            ClassEntry(id=c.id, name=c.name, translations={lang.lower(): (c.name,)}) for c in cs.classes
        )
        cs = ClassSet(name=cs.name, classes=entries, source=opt("classes"))
    return cs.in_language(lang)
