"""Conventional colours for recognisable class names, in every language of the class sets (issue 18).

"water", "forest", "urban area", "cropland" … get the ESA WorldCover legend colours
whatever language they are written in; a free ``--classes`` run stores them in its
style, and the search panel's worker hands the same colours to the plugin.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

import rsgeo
from rsgeo.classsets import builtin_class_set, list_class_sets
from rsgeo.definitions.colours import QUALITATIVE, WORLDCOVER, class_colours, concept_of, conventional_colour
from rsgeo.definitions.schema import STYLES_TABLE
from rsgeo.encoders.testing import HashEncoder
from rsgeo.options import RunOptions
from rsgeo.scene import ReadOptions
from tests.conftest import shared

# EuroSAT class → the WorldCover class whose colour it should take.
EUROSAT_AS = {
    "AnnualCrop": "cropland", "Forest": "tree cover", "HerbaceousVegetation": "grassland", "Industrial": "built-up",
    "Pasture": "grassland", "PermanentCrop": "cropland", "Residential": "built-up", "River": "permanent water bodies",
    "SeaLake": "permanent water bodies",
}


def test_every_worldcover_name_in_every_language_gets_its_legend_colour() -> None:
    worldcover = builtin_class_set("esa-worldcover")
    assert len(worldcover.languages) >= 10
    for lang in worldcover.languages:
        in_lang = worldcover.in_language(lang)
        for name, legend in zip(in_lang.names, (c.colour for c in worldcover.classes)):
            assert conventional_colour(name) == legend, (lang, name)


def test_eurosat_names_in_every_language_take_their_worldcover_colour() -> None:
    eurosat = builtin_class_set("eurosat")
    for lang in eurosat.languages:
        names = eurosat.in_language(lang).names
        for cls, name in zip(eurosat.classes, names):
            expected = WORLDCOVER.get(EUROSAT_AS.get(cls.id, ""))
            if cls.id == "Highway":
                assert concept_of(name) == "road", (lang, name)
            else:
                assert conventional_colour(name) == expected, (lang, name)


@pytest.mark.parametrize(
    ("name", "concept"),
    [("urban area", "built"), ("water", "water"), ("forest", "forest"), ("cropland", "cropland"),
     ("floresta de pinheiros", "forest"), ("rice paddies", "cropland"), ("sea ice", "snow"),
     ("herbaceous wetland", "wetland"), ("bare ground or sparse vegetation", "bare"), ("Wohngebiet", None),
     ("airport", None), ("service area", None), ("Meer", "water"), ("город", "built"), ("湖泊", "water")],
)
def test_names_read_as_concepts(name: str, concept: str | None) -> None:
    # "service" must not read as ice, nor "Wohngebiet" (no term for it) as anything.
    assert concept_of(name) == concept


def test_unrecognised_names_take_unused_palette_colours() -> None:
    colours = class_colours(["airport", "water", "bridge", "tennis court"], known={"bridge": "1,2,3"})
    assert colours[1] == WORLDCOVER["permanent water bodies"] and colours[2] == "1,2,3"
    assert colours[0] == QUALITATIVE[0] and colours[3] == QUALITATIVE[1]
    many = class_colours([f"thing {i}" for i in range(30)])
    assert len(set(many)) == 30


def test_every_class_set_colours_every_class() -> None:
    for name in list_class_sets():
        cs = builtin_class_set(name)
        colours = class_colours(cs.names, cs.colours)
        assert len(colours) == len(cs.names) and all(re.fullmatch(r"\d+,\d+,\d+", c) for c in colours)


def _style_colours(path: Path, layer: str) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        qml = db.execute(f"SELECT styleQML FROM {STYLES_TABLE} WHERE f_table_name = ?", (layer,)).fetchone()[0]
    symbol_colour = dict(re.findall(r'<symbol type="fill" name="(\d+)".*?name="color" type="QString" value="(\d+,\d+,\d+),255"', qml))
    cats = re.findall(r'<category render="true" symbol="(\d+)" value="([^"]*)"', qml)
    assert 'alpha="0.75"' in qml
    return {value: symbol_colour[sym] for sym, value in cats}


def test_free_classes_are_stored_in_conventional_colours_and_the_worker_agrees(tmp_path: Path) -> None:
    from rsgeo.worker import Worker

    out = tmp_path / "l7.gpkg"
    classes = ["urban area", "forest", "water", "airport"]
    rsgeo.classify(shared("L7_ETMs.tif"), out, classes=classes, read=ReadOptions(chip_size=64, bands=(3, 2, 1)),
                   options=RunOptions(encoder=HashEncoder()))
    stored = _style_colours(out, "landcover")
    assert stored["urban area"] == "250,0,0" and stored["forest"] == "0,100,0" and stored["water"] == "0,100,200"
    worker = Worker()  # opens the result with its stored model, test:hash
    answer = worker.classify({"path": str(out), "classes": classes})
    assert dict(zip(answer["classes"], answer["colours"])) == stored
