"""The model registry is consistent data (issue 3: a registry as data)."""

from __future__ import annotations

import re

import pytest

from rsgeo.errors import ModelError
from rsgeo.zoo.registry import (
    CLIP_224,
    DEFAULT_MODEL,
    MODELS,
    RS_M_CLIP_LANGUAGES,
    get_model,
    model_names,
    models_for_language,
)
from rsgeo.zoo.templates import GENERIC_TEMPLATES, default_templates, load_templates, record_templates

HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_the_issue_models_are_registered_and_rs_m_clip_is_default() -> None:
    names = set(model_names())
    assert {
        "rs-m-clip", "remoteclip-rn50", "remoteclip-vit-b-32", "remoteclip-vit-l-14", "clip-rsicd-v2",
        "georsclip-vit-b-32", "skyclip-vit-b-32", "openai-vit-b-32",
    } <= names
    assert len(names) == len(MODELS)
    assert DEFAULT_MODEL == "rs-m-clip"
    from rsgeo.zoo.loading import DEFAULT_MODEL as LOADER_DEFAULT

    assert LOADER_DEFAULT == DEFAULT_MODEL


@pytest.mark.parametrize("record", MODELS, ids=lambda m: m.name)
def test_record_fields_are_well_formed(record) -> None:
    assert record.loader in ("open_clip_hub", "open_clip_checkpoint", "hf_clip")
    assert record.files, "a record names at least its weights file"
    for f in record.files:
        assert (f.repo is None) != (f.url is None), "a file comes from a repo or a URL"
        assert f.revision is None or HEX40.match(f.revision), "revisions are pinned to full commit hashes"
        assert f.sha256 is None or HEX64.match(f.sha256)
        assert f.download_url.startswith("https://")
    assert record.verified is False, "nothing could be re-verified from a download on these machines"
    assert set(record.languages) <= set(RS_M_CLIP_LANGUAGES) and "en" in record.languages
    for lang, templates in record.templates.items():
        assert lang in record.languages
        assert templates and all(t.count("{}") == 1 for t in templates)
    assert record.image_spec == CLIP_224


def test_published_remoteclip_checksums_and_revision() -> None:
    # From the Git LFS pointers of chendelong/RemoteCLIP@bf1d8a3 (see the registry's docstring).
    vit = get_model("remoteclip-vit-b-32").weights
    assert vit.filename == "RemoteCLIP-ViT-B-32.pt"
    assert vit.revision == "bf1d8a3ccf2ddbf7c875705e46373bfe542bce38"
    assert vit.sha256 == "60014e395d930a3f2963d1d89c8522bf4ad56775571e4356e866864789af85c4"
    assert vit.download_url == f"https://huggingface.co/chendelong/RemoteCLIP/resolve/{vit.revision}/RemoteCLIP-ViT-B-32.pt"
    # Unknown checksums stay unknown rather than invented.
    assert get_model("rs-m-clip").weights.sha256 is None
    assert get_model("georsclip-vit-b-32").weights.sha256 is None


def test_open_clip_architectures_exist_and_match_the_declared_input() -> None:
    import open_clip

    for record in MODELS:
        if record.loader == "open_clip_hub" and record.text_config:
            assert record.architecture in open_clip.list_models()
            continue
        if record.loader == "hf_clip":
            continue
        cfg = open_clip.get_model_config(record.architecture)
        assert cfg is not None, record.name
        assert cfg["vision_cfg"]["image_size"] == record.image_spec.size
    # GeoRSCLIP and the OpenAI baseline were trained with OpenAI's QuickGELU towers.
    assert get_model("georsclip-vit-b-32").architecture.endswith("quickgelu")
    assert get_model("openai-vit-b-32").architecture.endswith("quickgelu")
    assert not get_model("remoteclip-vit-b-32").architecture.endswith("quickgelu")


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(ModelError) as err:
        get_model("remoteclip-vit-b-16")
    message = str(err.value)
    assert "remoteclip-vit-b-16" in message and "\n" not in message
    for name in model_names():
        assert name in message
    assert get_model("  RS-M-CLIP ").name == "rs-m-clip"


def test_models_for_a_language() -> None:
    assert [m.name for m in models_for_language("pt")] == ["rs-m-clip"]
    assert models_for_language("en")[0].name == "rs-m-clip"
    assert models_for_language("ja") == []


def test_templates_per_model_and_language(tmp_path) -> None:
    assert record_templates(get_model("remoteclip-vit-b-32")) == ("a satellite photo of {}.",)
    assert record_templates(get_model("rs-m-clip"), "zh") == GENERIC_TEMPLATES["zh"]
    assert default_templates("skyclip-vit-b-32")[0] == "a satellite photo of {}."
    assert default_templates("unknown-model", "fr") == GENERIC_TEMPLATES["fr"]
    for lang in RS_M_CLIP_LANGUAGES:
        assert all(t.count("{}") == 1 for t in GENERIC_TEMPLATES[lang])
    path = tmp_path / "templates.txt"
    path.write_text("# mine\nan overhead view of {}.\n\na satellite image of {}\n", encoding="utf-8")
    assert load_templates(path) == ("an overhead view of {}.", "a satellite image of {}")
    path.write_text("no placeholder here\n", encoding="utf-8")
    from rsgeo.errors import OptionError

    with pytest.raises(OptionError, match="exactly one"):
        load_templates(path)


def test_model_strings_that_are_not_registered_names(tmp_path, monkeypatch) -> None:
    from rsgeo.zoo import load_encoder
    from rsgeo.errors import WeightsNotAvailableError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RSGEO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "rs-m-clip").mkdir()  # a folder named like a model: the registered name wins
    with pytest.raises(WeightsNotAvailableError):
        load_encoder("rs-m-clip")
    with pytest.raises(ModelError, match="neither a transformers CLIP folder"):
        load_encoder("./rs-m-clip")
    with pytest.raises(ModelError, match="use --model hf-hub:joaodaniel/RS-M-CLIP"):
        load_encoder("joaodaniel/RS-M-CLIP")
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="needs its architecture: --model arch:"):
        load_encoder("weights.pt")
