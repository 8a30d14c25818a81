"""Queries and class names in RS-M-CLIP's ten languages; warnings for English-only models (issue 3)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyogrio
import pytest

from rsgeo.classsets import load_class_set
from rsgeo.questions import ClassChoice, class_embeddings
from rsgeo.encoders.base import EncoderIdentity
from rsgeo.encoders.testing import HashEncoder
from rsgeo.language import detect_language, guess_languages, unsupported_language_warnings, warn_if_unsupported
from rsgeo.zoo.registry import RS_M_CLIP_LANGUAGES
from tests.conftest import run_cli, shared
from tests.test_zoo_helpers import MULTILINGUAL_QUERIES, rs_m_clip_layout_folder

MORE = {
    "nl": "bos bij de rivier",
    "it": "foresta vicino al fiume",
    "ja": "川のそばの森",
}


@pytest.mark.parametrize(("lang", "text"), sorted({**MULTILINGUAL_QUERIES, **MORE}.items()))
def test_detects_the_language_of_short_queries(lang: str, text: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize("text", ["airport", "dense residential area", "Forest", "solar farm next to the highway"])
def test_english_is_never_taken_for_another_language(text: str) -> None:
    assert "en" in guess_languages(text) or guess_languages(text) == ()


def test_class_names_of_every_language_are_recognised() -> None:
    for lang in RS_M_CLIP_LANGUAGES:
        names = load_class_set("eurosat", lang=lang).names
        detected = [detect_language(f"{names[1]} {names[8]}") for _ in range(1)]  # forest + river
        assert detected == [lang], (lang, names[1], names[8])


def english_only(model_id: str = "remoteclip-vit-b-32") -> HashEncoder:
    enc = HashEncoder()
    enc.identity = EncoderIdentity(model_id)
    enc.languages = ("en",)
    return enc


def test_english_only_model_warns_and_names_a_model_that_reads_the_language() -> None:
    [message] = unsupported_language_warnings(
        [MULTILINGUAL_QUERIES["pt"], "a forest"], languages=("en",), model="remoteclip-vit-b-32"
    )
    assert "Portuguese (pt)" in message and "remoteclip-vit-b-32 reads only English" in message
    assert "--model rs-m-clip" in message and "\n" not in message
    assert unsupported_language_warnings([MULTILINGUAL_QUERIES["pt"]], languages=RS_M_CLIP_LANGUAGES, model="rs-m-clip") == []
    assert unsupported_language_warnings([MULTILINGUAL_QUERIES["pt"]], languages=None, model="x") == []
    assert unsupported_language_warnings(["forest", "airport"], languages=("en",), model="x") == []
    [explicit] = unsupported_language_warnings(["anything"], languages=("en",), model="x", lang="zh")
    assert "--lang zh" in explicit and "Chinese" in explicit and "rs-m-clip" in explicit
    [japanese] = unsupported_language_warnings([MORE["ja"]], languages=RS_M_CLIP_LANGUAGES, model="rs-m-clip")
    assert "no model in rsgeo's registry reads Japanese" in japanese
    # One warning per language, however many queries.
    assert len(unsupported_language_warnings(list(MULTILINGUAL_QUERIES.values()), languages=("en",), model="x")) == 7


def test_class_embeddings_in_portuguese_warn_once_for_an_english_model(caplog: pytest.LogCaptureFixture) -> None:
    cs = load_class_set("esa-worldcover", lang="pt")
    with caplog.at_level(logging.WARNING, logger="rsgeo.language"):
        class_embeddings(english_only(), ClassChoice(class_set=cs))
    assert len(caplog.records) == 1 and "--lang pt" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rsgeo.language"):
        rs = english_only("rs-m-clip")
        rs.languages = RS_M_CLIP_LANGUAGES
        class_embeddings(rs, ClassChoice(class_set=cs))
        assert warn_if_unsupported(rs, [MULTILINGUAL_QUERIES["zh"]]) == []
    assert caplog.records == []


def test_rs_m_clip_embeds_class_sets_in_every_language() -> None:
    from rsgeo.zoo import load_encoder

    enc = load_encoder("rs-m-clip", checkpoint=str(rs_m_clip_layout_folder()), device="cpu")
    vectors = {}
    for lang in RS_M_CLIP_LANGUAGES:
        cs = load_class_set("eurosat", lang=lang)
        emb = class_embeddings(enc, ClassChoice(class_set=cs)).embeddings
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        vectors[lang] = emb
    # Different words in different languages: different (random-model) embeddings.
    assert np.abs(vectors["pt"] - vectors["zh"]).max() > 1e-3


@pytest.mark.slow
def test_classify_in_portuguese_and_query_in_chinese_end_to_end(tmp_path: Path) -> None:
    """The real command (class set + --lang) and the query API on the Sentinel-2 scene, RS-M-CLIP format."""
    import rsgeo
    from rsgeo.scene import ReadOptions

    scene = shared("eolearn/s2_l1c_scene2_13band.tif")
    folder = str(rs_m_clip_layout_folder())
    out = tmp_path / "pt.gpkg"
    proc = run_cli("classify", str(scene), "-o", str(out), "--class-set", "eurosat", "--lang", "pt",
                   "--bands", "4,3,2", "--chip-size", "32", "--progress", "none",
                   "--model", "rs-m-clip", "--checkpoint", folder)
    frame = pyogrio.read_dataframe(out, layer="landcover")
    assert {"floresta", "mar_ou_lago"} <= set(frame.columns)
    assert set(frame["top_class"]) <= set(load_class_set("eurosat", lang="pt").names)
    assert "WARNING" not in proc.stderr
    out = tmp_path / "zh.gpkg"
    rsgeo.query(
        scene, out, texts=[MULTILINGUAL_QUERIES["zh"], MULTILINGUAL_QUERIES["pt"]],
        read=ReadOptions(bands=(4, 3, 2), chip_size=32),
        options=rsgeo.RunOptions(model="rs-m-clip", checkpoint=folder, device="cpu"),
    )
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert "query_河流旁边的森林" in layers and "query_floresta_de_pinheiros_perto_do_rio" in layers
