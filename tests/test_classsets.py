"""Class sets: built-in sets, user files, languages, and class embeddings (issue 3)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsgeo.classsets import (
    builtin_class_set,
    class_set_from_names,
    list_class_sets,
    load_class_set,
)
from rsgeo.encoders.base import l2_normalise
from rsgeo.encoders.testing import HashEncoder
from rsgeo.errors import OptionError
from rsgeo.questions import ClassChoice, class_embeddings
from rsgeo.zoo.registry import RS_M_CLIP_LANGUAGES

SIZES = {"eurosat": 10, "uc-merced": 21, "aid": 30, "nwpu-resisc45": 45, "esa-worldcover": 11}


def test_builtin_sets_have_the_published_number_of_classes() -> None:
    assert sorted(list_class_sets()) == sorted(SIZES)
    for name, n in SIZES.items():
        cs = load_class_set(name)
        assert len(cs) == n == len(set(cs.ids)) == len(set(cs.names)), name


@pytest.mark.parametrize("name", sorted(SIZES))
def test_names_are_readable_not_dataset_labels(name: str) -> None:
    for label in load_class_set(name).names:
        assert label == label.strip() and label[0].islower(), label
        assert not re.search(r"[a-z][A-Z]|_", label), f"{label!r} looks like a dataset label"


def test_eurosat_folder_labels_map_to_readable_names() -> None:
    cs = load_class_set("eurosat")
    assert cs.ids[0] == "AnnualCrop" and cs.names[0] == "annual crop land"
    assert cs.index("SeaLake") == cs.ids.index("SeaLake")
    assert cs.names[cs.index("HerbaceousVegetation")] == "herbaceous vegetation land"
    assert "brushland or shrubland" in cs.prompt_names()[cs.index("HerbaceousVegetation")]
    assert cs.index("no such class") is None


def test_aliases_and_folder_spellings() -> None:
    assert load_class_set("UCM").name == "uc-merced"
    assert load_class_set("resisc45").name == "nwpu-resisc45"
    assert load_class_set("WorldCover").name == "esa-worldcover"
    ucm = load_class_set("uc-merced")
    assert ucm.names[ucm.index("storagetanks")] == "storage tanks"
    resisc = load_class_set("nwpu-resisc45")
    assert resisc.index("baseball_diamond") == resisc.index("Baseball Diamond")


@pytest.mark.parametrize("name", ["eurosat", "esa-worldcover"])
def test_names_in_every_rs_m_clip_language(name: str) -> None:
    cs = load_class_set(name)
    assert set(RS_M_CLIP_LANGUAGES) <= set(cs.languages)
    for lang in RS_M_CLIP_LANGUAGES:
        local = load_class_set(name, lang=lang)
        assert local.lang == lang
        assert len(set(local.names)) == len(cs)
    assert load_class_set("eurosat", lang="pt").names[1] == "floresta"
    assert load_class_set("eurosat", lang="zh").names[1] == "森林"
    assert load_class_set("esa-worldcover", lang="de").names[0] == "Baumbedeckung"


def test_worldcover_codes_and_legend_colours() -> None:
    cs = load_class_set("esa-worldcover")
    assert cs.codes == (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
    assert cs.colours is not None and cs.colours["tree cover"] == "0,100,0"
    assert load_class_set("esa-worldcover", lang="pt").colours["cobertura arbórea"] == "0,100,0"
    assert load_class_set("eurosat").colours is None


def test_unknown_set_or_language_are_one_line_errors() -> None:
    with pytest.raises(OptionError) as err:
        load_class_set("eurosat-ms")
    assert all(name in str(err.value) for name in SIZES) and "\n" not in str(err.value)
    with pytest.raises(OptionError, match=r"no names in 'pt' \(it has: en\)"):
        load_class_set("aid", lang="pt")


def test_user_yaml_csv_and_txt(tmp_path: Path) -> None:
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text(
        "name: mine\nclasses:\n  - forest\n  - name: water\n    synonyms: [lake, river]\n"
        "    names: {pt: [água, lago]}\n  - {name: solar farm, id: PV, colour: '10, 20, 30', code: 7}\n",
        encoding="utf-8",
    )
    cs = load_class_set(yaml_file)
    assert cs.names == ("forest", "water", "solar farm") and cs.ids[2] == "PV"
    assert cs.prompt_names()[1] == ["water", "lake", "river"]
    assert cs.colours == {"solar farm": "10,20,30"} and cs.codes[2] == 7
    assert cs.prompts(["a photo of {}."])[1] == ["a photo of water.", "a photo of lake.", "a photo of river."]
    with pytest.raises(OptionError, match="no names in 'pt'"):
        load_class_set(yaml_file, lang="pt")  # only one class has Portuguese names

    mapping = tmp_path / "map.yml"
    mapping.write_text("classes:\n  forest: [woodland]\n  cropland:\n", encoding="utf-8")
    assert load_class_set(mapping).prompt_names() == [["forest", "woodland"], ["cropland"]]

    csv_file = tmp_path / "classes.csv"
    csv_file.write_text("id,name,synonyms,pt\nF,forest,woodland;trees,floresta\nW,water,lake,água\n", encoding="utf-8")
    cs = load_class_set(csv_file, lang="pt")
    assert cs.names == ("floresta", "água") and cs.ids == ("F", "W")
    assert load_class_set(csv_file).prompt_names()[0] == ["forest", "woodland", "trees"]

    bare = tmp_path / "bare.csv"
    bare.write_text("forest,woodland\nwater\n", encoding="utf-8")
    assert load_class_set(bare).prompt_names() == [["forest", "woodland"], ["water"]]

    txt = tmp_path / "classes.txt"
    txt.write_text("# my classes\nforest; woodland\nbare soil\n", encoding="utf-8")
    assert load_class_set(txt).prompt_names() == [["forest", "woodland"], ["bare soil"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: [forest]\n", "zero-shot needs two or more"),
        ("classes: [forest, Forest]\n", "'Forest' is given twice"),
        ("classes: [forest, {synonyms: [x]}]\n", "has no name"),
        ("classes: [forest, {name: water, colour: blue}]\n", 'write it as "R,G,B"'),
        ("classes: [forest, water\n", "not valid YAML"),
        ("just: a mapping\n", "no 'classes' list"),
    ],
)
def test_bad_user_files_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OptionError) as err:
        load_class_set(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="does not exist"):
        load_class_set(tmp_path / "nope.yaml")
    with pytest.raises(OptionError, match="is a folder"):
        load_class_set(tmp_path)


def test_class_embeddings_average_templates_and_synonyms() -> None:
    enc = HashEncoder()
    cs = load_class_set("eurosat")
    templates = ["a satellite photo of {}.", "an aerial image of {}."]
    emb = class_embeddings(enc, ClassChoice(class_set=cs, templates=tuple(templates))).embeddings
    assert emb.shape == (10, enc.embedding_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    k = cs.index("HerbaceousVegetation")
    prompts = [t.format(n) for n in ("herbaceous vegetation land", "brushland or shrubland") for t in templates]
    expected = l2_normalise(enc.encode_texts(prompts).mean(axis=0, keepdims=True))[0]
    np.testing.assert_allclose(emb[k], expected, atol=1e-6)
    without = class_embeddings(enc, ClassChoice(class_set=cs, templates=tuple(templates), synonyms=False)).embeddings
    assert np.abs(without[k] - emb[k]).max() > 1e-3
    # Portuguese names with the model's Portuguese templates.
    pt = class_embeddings(enc, ClassChoice(class_set=cs, lang="pt")).embeddings
    single = l2_normalise(enc.encode_texts(["uma foto de satélite de floresta.", "uma imagem aérea de floresta."]).mean(0, keepdims=True))
    np.testing.assert_allclose(pt[cs.index("Forest")], single[0], atol=1e-6)


def test_plain_names_as_a_class_set() -> None:
    cs = class_set_from_names(["floresta", "água"], lang="pt")
    assert cs.names == ("floresta", "água") and cs.lang == "pt"
    with pytest.raises(OptionError):
        class_set_from_names(["forest"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghij klm", min_size=1, max_size=12).map(str.strip).filter(bool), min_size=2, max_size=6, unique_by=lambda s: re.sub(r"\W", "", s)))
def test_any_valid_names_give_unit_embeddings(names: list[str]) -> None:
    cs = class_set_from_names(names)
    emb = class_embeddings(HashEncoder(), ClassChoice(class_set=cs, templates=("{}",))).embeddings
    assert emb.shape[0] == len(names)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert builtin_class_set("eurosat") is builtin_class_set("eurosat")  # parsed once
