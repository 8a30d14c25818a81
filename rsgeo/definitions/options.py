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

    ``switch`` options take no value on the command line (``--overwrite``);
    ``qgis_where`` says where a QGIS user finds a field that is not only in the
    algorithm's dialog (messages then point there).
    """

    name: str
    flag: str
    label: str
    switch: bool = False
    qgis_where: str = ""


#: The plugin's settings dialog, as its menu names it (rsgeo_qgis/plugin.py).
SETTINGS_MENU_ITEM = "rsgeo settings…"
_SETTINGS = f"Plugins ▸ rsgeo ▸ {SETTINGS_MENU_ITEM}"

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
        Option("checkpoint", "--checkpoint", "Checkpoint (local weights)", qgis_where=f"the algorithm's field, or {_SETTINGS}"),
        Option("cache_dir", "--cache-dir", "Weights cache folder", qgis_where=f"the algorithm's field, or {_SETTINGS}"),
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
        Option("merge_crs", "--merge-crs", "CRS of the merged layers"),
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
        Option("labels", "--labels", "Labels file"),
        Option("label_field", "--label-field", "Label field"),
        Option("label_layer", "--label-layer", "Labels layer"),
        Option("save_labels", "--save-labels", "Save the labels as layer"),
        Option("new_layer", "--new-layer", "New layer name"),
        Option("knn", "--knn", "Neighbours per chip"),
        Option("text_weight", "--text-weight", "Text weight"),
        Option("laplacian_weight", "--laplacian-weight", "Neighbour weight"),
        Option("iterations", "--iterations", "Iterations"),
        Option("min_class_weight", "--min-class-weight", "Minimum class share"),
        Option("reg", "--reg", "Pull toward the text classifier"),
        Option("no_rasters", "--no-rasters", "No raster outputs", switch=True),
        Option("dense", "--dense", "Dense sub-chip maps", switch=True),
        Option("keep_patches", "--keep-patches", "Keep patch embeddings", switch=True),
        Option("zones", "--zones", "Zones layer"),
        Option("unsure_below", "--unsure-below", "Unsure below score"),
        Option("min_zone_px", "--min-zone-px", "Minimum zone size (pixels)"),
        Option("format", "--format", "Export format"),
        Option("crs", "--crs", "Output CRS"),
        Option("index", "--index", "Archive index file"),
        Option("rebuild_index", "--rebuild-index", "Rebuild a stale archive index", switch=True),
        Option("stac_search", "--stac-search", "STAC API search URL"),
        Option("collection", "--collection", "STAC collection"),
        Option("bbox", "--bbox", "Search box"),
        Option("bbox_crs", "--bbox-crs", "Search box CRS"),
        Option("datetime", "--datetime", "Search date or interval"),
        Option("max_cloud", "--max-cloud", "Maximum cloud cover (%)"),
        Option("max_items", "--max-items", "Maximum items"),
        Option("mosaic", "--mosaic", "Mosaic the items", switch=True),
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
    where = f" (in {o.qgis_where})" if o.qgis_where else ""
    return f"‘{o.label}’{where}" if value is None else f"‘{o.label}’ = {value}{where}"


def render(text: str, style: Style) -> str:
    """``text`` with every option marker spelt for ``style``."""
    if "⟦" not in text:
        return text
    return _MARK.sub(lambda m: spell(m.group(1), m.group(2), style) if m.group(1) in OPTIONS else m.group(0), text)

# -- accuracy assessment (rsgeo sample, rsgeo assess) -------------------------------------------
OPTIONS.update({
    o.name: o
    for o in (
        Option("n", "-n", "Number of sample points"),
        Option("stratified", "--stratified", "Stratified by map class", switch=True),
        Option("seed", "--seed", "Random seed"),
        Option("min_per_class", "--min-per-class", "Minimum points per class"),
        Option("reference", "--reference", "Reference data"),
        Option("reference_field", "--reference-field", "Reference class field"),
        Option("class_map", "--class-map", "Class map (YAML)"),
        Option("purity", "--purity", "Minimum reference purity of a tile"),
        Option("compare", "--compare", "Other results to compare"),
    )
})
