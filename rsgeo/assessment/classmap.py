"""The class map: which reference class each map class stands for.

A YAML file (``--class-map MAP.yaml``)::

    classes:              # map class -> reference class; several map classes may share one
      forest: forest
      woodland: forest
      farmland: cultivated land
    reference_codes:      # only for a raster reference: pixel value -> reference class name
      1: cultivated land
      2: forest
    ignore: [0]           # reference values (codes or names) that are no data

Without a class map, map classes are matched to reference classes of the
same name (ignoring case). Map classes that match nothing are left out of
the assessment and reported; reference classes no map class stands for stay
in the error matrix (the map can never be right there: all omission).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgeo.errors import OptionError, opt


@dataclass(frozen=True)
class ClassMap:
    """The parsed class map file (all parts optional)."""

    classes: Mapping[str, str] = field(default_factory=dict)
    reference_codes: Mapping[int, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    source: str = ""

    def reference_name(self, value: Any) -> str:
        """The reference class name of a raster value or vector attribute."""
        if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer()):
            return self.reference_codes.get(int(value), str(int(value)))
        return str(value).strip()

    def ignored(self, value: Any) -> bool:
        return value is None or str(value).strip() == "" or str(value).strip() in self.ignore or (
            self.reference_name(value) in self.ignore)


def load_class_map(path: str | Path | None) -> ClassMap:
    """Read a class map file (``None``: the empty map, names matched as they are)."""
    if path is None:
        return ClassMap()
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionError(f"cannot read {opt('class_map')} {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise OptionError(f"{opt('class_map')} {p.name} is not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or not set(data) <= {"classes", "reference_codes", "ignore"} or not data:
        raise OptionError(
            f"{opt('class_map')} {p.name} must be a mapping with 'classes' (map class: reference class), and "
            "optionally 'reference_codes' (raster value: name) and 'ignore' (values that are no data)"
        )
    classes = data.get("classes") or {}
    codes = data.get("reference_codes") or {}
    ignore = data.get("ignore") or []
    if not isinstance(classes, dict) or not isinstance(codes, dict) or not isinstance(ignore, list):
        raise OptionError(f"{opt('class_map')} {p.name}: 'classes' and 'reference_codes' are mappings, 'ignore' a list")
    try:
        parsed_codes = {int(k): str(v).strip() for k, v in codes.items()}
    except (TypeError, ValueError):
        raise OptionError(f"{opt('class_map')} {p.name}: 'reference_codes' keys must be integer pixel values") from None
    return ClassMap(
        classes={str(k).strip(): str(v).strip() for k, v in classes.items()},
        reference_codes=parsed_codes, ignore=frozenset(str(v).strip() for v in ignore), source=p.name,
    )


@dataclass(frozen=True)
class Matching:
    """Map classes matched to reference classes."""

    #: Map class -> reference class, for the map classes assessed.
    assessed: Mapping[str, str]
    #: Map classes that match no reference class (left out, reported).
    unmatched_map: tuple[str, ...]
    #: The classes of the error matrix: the reference classes, mapped ones first.
    classes: tuple[str, ...]


def match_classes(class_map: ClassMap, map_classes: Sequence[str], reference_classes: Iterable[str]) -> Matching:
    """Match the map's classes to the reference's; a class map naming classes that do not exist is an error.

    ``reference_classes`` are all classes the reference knows (its legend, or
    the values of its class field), whether or not they occur over the scene.
    """
    known_ref = list(dict.fromkeys(str(c) for c in reference_classes if str(c) not in class_map.ignore))
    known_ref += [n for n in class_map.reference_codes.values() if n not in known_ref and n not in class_map.ignore]
    if class_map.classes:
        missing_map = [c for c in class_map.classes if c not in map_classes]
        if missing_map:
            raise OptionError(
                f"{opt('class_map')} {class_map.source} names map classes the layer does not have: "
                f"{', '.join(missing_map)}; the layer's classes are {', '.join(map_classes)}"
            )
        missing_ref = sorted({r for r in class_map.classes.values() if r not in known_ref})
        if missing_ref:
            raise OptionError(
                f"{opt('class_map')} {class_map.source} names reference classes the reference does not have: "
                f"{', '.join(missing_ref)}; it has {', '.join(known_ref) or 'no classes'}"
            )
        assessed = {m: class_map.classes[m] for m in map_classes if m in class_map.classes}
    else:
        by_folded = {r.casefold(): r for r in known_ref}
        assessed = {m: by_folded[m.casefold()] for m in map_classes if m.casefold() in by_folded}
    if not assessed:
        raise OptionError(
            f"no map class ({', '.join(map_classes)}) matches a reference class ({', '.join(known_ref) or 'none'}); "
            f"say which is which with {opt('class_map')}"
        )
    mapped = list(dict.fromkeys(assessed.values()))
    classes = tuple(mapped + [r for r in known_ref if r not in mapped])
    return Matching(assessed, tuple(m for m in map_classes if m not in assessed), classes)
