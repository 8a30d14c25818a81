"""The user options, named the way each front end spells them.

The library reaches users through three front ends: the command line
(``--chip-size 500m``), Python (``chip_size="500m"``) and the QGIS plugin (a
"Chip size" field). An error raised deep in the library must name the option
the way the reader's front end does, so library messages refer to options by
a marker, :func:`ref`, and the text is rendered for a *style* when it is shown
(:func:`render`): ``"cli"``, ``"python"`` or ``"qgis"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Style = Literal["cli", "python", "qgis"]
STYLES: tuple[Style, ...] = ("cli", "python", "qgis")


@dataclass(frozen=True)
class Option:
    """One user option: its Python name, command-line flag and QGIS label.

    ``switch`` options take no value on the command line (``--overwrite``).
    """

    name: str
    flag: str
    label: str
    switch: bool = False


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("output", "-o", "Output GeoPackage"),
        Option("overwrite", "--overwrite", "Overwrite the output", switch=True),
        Option("chip_size", "--chip-size", "Chip size"),
        Option("stride", "--stride", "Stride"),
        Option("overlap", "--overlap", "Overlap"),
        Option("bands", "--bands", "Bands (R,G,B)"),
        Option("stretch", "--stretch", "Stretch"),
        Option("gsd", "--gsd", "Resample to GSD (m)"),
        Option("min_valid", "--min-valid", "Minimum valid fraction"),
        Option("model", "--model", "Model"),
        Option("checkpoint", "--checkpoint", "Checkpoint (local weights)"),
        Option("cache_dir", "--cache-dir", "Weights cache folder"),
        Option("device", "--device", "Device"),
        Option("precision", "--precision", "Precision"),
        Option("engine", "--engine", "Inference engine"),
        Option("batch_size", "--batch-size", "Batch size"),
        Option("workers", "--workers", "Reader threads"),
        Option("embedding_dtype", "--embedding-dtype", "Embedding storage type"),
        Option("resume", "--resume", "Resume an interrupted run", switch=True),
        Option("cluster", "--cluster", "Dask cluster"),
        Option("scenes_in_flight", "--scenes-in-flight", "Scenes in flight"),
        Option("merge", "--merge", "Merged GeoPackage"),
        Option("scene_list", "--scene-list", "Scene list file"),
        Option("classes", "--classes", "Classes"),
        Option("class_set", "--class-set", "Class set"),
        Option("template", "--template", "Prompt templates"),
        Option("templates_file", "--templates-file", "Prompt templates file"),
        Option("lang", "--lang", "Language"),
        Option("layer", "--layer", "Layer name"),
        Option("text", "--text", "Search text"),
        Option("like_tile", "--like-tile", "More like tile"),
        Option("unlike_tile", "--unlike-tile", "Less like tile"),
        Option("like", "--like", "More like location"),
        Option("unlike", "--unlike", "Less like location"),
        Option("top_k", "--top-k", "Top k"),
        Option("threshold", "--threshold", "Similarity threshold"),
    )
}

#: Scenes a batch encodes at once on a cluster (``scenes_in_flight``'s default there).
DEFAULT_SCENES_IN_FLIGHT = 2

_MARK = re.compile(r"⟦([a-z_]+)(?:=([^⟧]*))?⟧")


def ref(name: str, value: object | None = None) -> str:
    """A marker naming option ``name`` (with an example ``value``), rendered by :func:`render`."""
    if name not in OPTIONS:
        raise KeyError(f"no option {name!r} in rsgeo.definitions.options.OPTIONS")
    return f"⟦{name}⟧" if value is None else f"⟦{name}={value}⟧"


def spell(name: str, value: str | None, style: Style) -> str:
    """Option ``name`` (with ``value``) as front end ``style`` writes it."""
    o = OPTIONS[name]
    if style == "cli":
        return o.flag if value is None else f"{o.flag} {value}"
    if style == "python":
        if value is None:
            return f"{o.name}=True" if o.switch else f"`{o.name}`"
        return f"{o.name}={value.strip(chr(34))!r}"
    return f"‘{o.label}’" if value is None else f"‘{o.label}’ = {value}"


def render(text: str, style: Style) -> str:
    """``text`` with every option marker spelt for ``style``."""
    if "⟦" not in text:
        return text
    return _MARK.sub(lambda m: spell(m.group(1), m.group(2), style) if m.group(1) in OPTIONS else m.group(0), text)
