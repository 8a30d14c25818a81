"""Read class sets from YAML, CSV or plain-text files.

YAML (the built-in sets use the full form)::

    name: my-classes            # optional
    classes:
      - forest                  # a bare name
      - name: water
        synonyms: [lake, river]
        names: {pt: água, de: [Wasser, See]}   # per language: name or [name, synonyms...]
        id: Water               # the dataset label (defaults to the name)
        code: 80                # optional raster value
        colour: "0,100,200"     # optional legend colour

``classes`` may also map names to synonym lists (``{forest: [woodland]}``),
or the whole file may be just a list.

CSV: a header with a ``name`` column and optionally ``id``, ``synonyms``
(separated by ``;``), ``code``, ``colour`` and one column per language
(``pt`` or ``name_pt``); without a header, the first cell of a row is the
name and further cells are synonyms. Text: one class per line, synonyms after
``;``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rsgeo.classsets.classset import ClassEntry, ClassSet, match_key
from rsgeo.errors import OptionError, opt

_LANG = re.compile(r"^(?:name_)?([a-z]{2})$")


def read_class_set_file(path: Path) -> ClassSet:
    """Parse a ``.yaml``/``.yml``, ``.csv`` or ``.txt`` class set file."""
    if not path.is_file():
        raise OptionError(f"class set file {path} does not exist; check the path given with {opt('class_set')}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"cannot read class set file {path} ({exc}); save it as UTF-8 text") from exc
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return class_set_from_data(_load_yaml(text, path), source=str(path), default_name=path.stem)
    if suffix == ".csv":
        return class_set_from_data({"classes": _csv_entries(text, path)}, source=str(path), default_name=path.stem)
    if suffix == ".txt":
        rows = [line.split(";") for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        entries = [{"name": r[0].strip(), "synonyms": [s.strip() for s in r[1:] if s.strip()]} for r in rows]
        return class_set_from_data({"classes": entries}, source=str(path), default_name=path.stem)
    raise OptionError(f"class set file {path} must end in .yaml, .yml, .csv or .txt")


def _load_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise OptionError(f"{path} is not valid YAML ({first}); see docs/models.md for the class set format") from None


def _csv_entries(text: str, path: Path) -> list[dict[str, Any]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        raise OptionError(f"class set file {path} is empty; write one class per row")
    header = [h.strip().lower() for h in rows[0]]
    if "name" not in header:
        return [{"name": r[0].strip(), "synonyms": [c.strip() for c in r[1:] if c.strip()]} for r in rows]
    entries: list[dict[str, Any]] = []
    for r in rows[1:]:
        cells = {h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header)}
        entry: dict[str, Any] = {"name": cells["name"]}
        if cells.get("id"):
            entry["id"] = cells["id"]
        if cells.get("synonyms"):
            entry["synonyms"] = [s.strip() for s in re.split(r"[;|]", cells["synonyms"]) if s.strip()]
        if cells.get("code"):
            entry["code"] = cells["code"]
        if cells.get("colour") or cells.get("color"):
            entry["colour"] = cells.get("colour") or cells.get("color")
        names = {}
        for h, value in cells.items():
            m = _LANG.match(h)
            if m and value and h not in ("id",):
                names[m.group(1)] = [s.strip() for s in re.split(r"[;|]", value) if s.strip()]
        if names:
            entry["names"] = names
        entries.append(entry)
    return entries


def class_set_from_data(data: Any, *, source: str, default_name: str) -> ClassSet:
    """Build and validate a :class:`ClassSet` from parsed YAML-like data."""
    if isinstance(data, list):
        data = {"classes": data}
    if not isinstance(data, Mapping) or "classes" not in data:
        raise OptionError(f"{source}: no 'classes' list; see docs/models.md for the class set format")
    raw = data["classes"]
    if isinstance(raw, Mapping):
        raw = [{"name": k, "synonyms": v or []} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise OptionError(f"{source}: 'classes' must be a list of class names or entries")
    entries = tuple(_entry(item, source) for item in raw)
    cs = ClassSet(
        name=str(data.get("name") or default_name),
        classes=entries,
        title=str(data.get("title") or ""),
        source=source,
        reference=data.get("reference"),
    )
    validate_class_set(cs)
    return cs


def _entry(item: Any, source: str) -> ClassEntry:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping) or not str(item.get("name") or "").strip():
        raise OptionError(f"{source}: class entry {item!r} has no name; give each class a 'name'")
    name = str(item["name"]).strip()
    if not isinstance(item["name"], (str, int, float)):
        raise OptionError(f"{source}: class name {item['name']!r} is not text; write each name as a string")
    synonyms = item.get("synonyms") or []
    if isinstance(synonyms, str):
        synonyms = [synonyms]
    if not isinstance(synonyms, list) or any(isinstance(s, (list, dict)) for s in synonyms):
        raise OptionError(f"{source}: class {name!r} has synonyms {synonyms!r}; give a list of names, e.g. [lake, river]")
    names_map = item.get("names") or {}
    if not isinstance(names_map, Mapping):
        raise OptionError(
            f"{source}: class {name!r} has names {names_map!r}; give a mapping of language to name, e.g. {{pt: água}}"
        )
    translations = {}
    for lang, terms in dict(names_map).items():
        if not isinstance(terms, (str, list)) or (isinstance(terms, list) and any(isinstance(t, (list, dict)) for t in terms)):
            raise OptionError(f"{source}: class {name!r} has {lang!r} names {terms!r}; give a name or a list of names")
        values = [terms] if isinstance(terms, str) else list(terms or [])
        values = [str(v).strip() for v in values if str(v).strip()]
        if values:
            translations[str(lang).strip().lower()] = tuple(values)
    code = item.get("code")
    try:
        code = int(code) if code not in (None, "") else None
    except (TypeError, ValueError):
        raise OptionError(f"{source}: class {name!r} has code {code!r}; codes are whole numbers") from None
    colour = item.get("colour") or item.get("color")
    if colour is not None and not re.fullmatch(r"\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*", str(colour)):
        raise OptionError(f"{source}: class {name!r} has colour {colour!r}; write it as \"R,G,B\" (0-255)")
    return ClassEntry(
        id=str(item.get("id") or name).strip(),
        name=name,
        synonyms=tuple(str(s).strip() for s in synonyms if str(s).strip()),
        translations=MappingProxyType(translations),
        code=code,
        colour=str(colour).replace(" ", "") if colour is not None else None,
        aliases=tuple(str(a).strip() for a in (item.get("aliases") or []) if str(a).strip()),
    )


def validate_class_set(cs: ClassSet) -> None:
    """At least two classes; ids and the names of every language unique."""
    if len(cs.classes) < 2:
        raise OptionError(f"class set {cs.name} ({cs.source}) has {len(cs.classes)} class(es); zero-shot needs two or more")
    _unique([match_key(c.id) for c in cs.classes], [c.id for c in cs.classes], "id", cs)
    for lang in cs.languages:
        labels = [c.label(lang) for c in cs.classes]
        _unique([match_key(label) for label in labels], labels, f"name ({lang})", cs)


def _unique(keys: list[str], shown: list[str], what: str, cs: ClassSet) -> None:
    seen: dict[str, str] = {}
    for key, label in zip(keys, shown):
        if not key:
            raise OptionError(f"class set {cs.name}: class {what} {label!r} has no letters or digits")
        if key in seen:
            raise OptionError(
                f"class set {cs.name} ({cs.source}): {what} {label!r} is given twice (as {seen[key]!r}); give each class once"
            )
        seen[key] = label
