"""open_clip folders with an XLM-RoBERTa text tower: RS-M-CLIP's published format (issue 3, points 1, 2, 4).

The model is tiny and random, but every file is in the published format:
``open_clip_config.json`` naming ``xlm-roberta-base``, ``open_clip_model.safetensors``,
and transformers' XLM-R tokenizer files. rsgeo's embeddings must equal
open_clip's own forward pass on the same weights.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from rsgeo.zoo import load_encoder
from rsgeo.errors import ModelError, WeightsNotAvailableError
from rsgeo.zoo.registry import RS_M_CLIP_LANGUAGES, get_model
from tests.conftest import shared
from tests.test_zoo_helpers import MULTILINGUAL_QUERIES, rs_m_clip_layout_folder, xlmr_clip_folder

TEXTS = list(MULTILINGUAL_QUERIES.values())


def real_crops() -> list[np.ndarray]:
    """Crops of the real 10 cm aerial scene, of several shapes (resize and crop both happen)."""
    import rasterio

    with rasterio.open(shared("OSBS_029.tif")) as ds:
        img = np.transpose(ds.read([1, 2, 3]), (1, 2, 0))
    return [img[:90, :70], img[100:164, 100:164], img[200:350, 50:250], img[10:40, 300:390]]


def open_clip_reference(folder: Path, crops: list[np.ndarray], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """open_clip's own pipeline: create_model_and_transforms + preprocess(PIL) + tokenizer."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.fromarray(np.ascontiguousarray(c))) for c in crops]))
        txt = model.encode_text(tokenizer(texts))
    norm = torch.nn.functional.normalize
    return norm(img, dim=-1).numpy(), norm(txt, dim=-1).numpy()


def rsgeo_embeddings(encoder, crops: list[np.ndarray], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from rsgeo.preprocess import fit_chip

    chips = np.stack([fit_chip(c, encoder.image_spec) for c in crops])
    return encoder.encode_images(chips), encoder.encode_texts(texts)


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_xlmr_local_dir_equals_open_clip(no_network: None) -> None:
    from rsgeo.zoo.loading import load_open_clip_dir

    folder = xlmr_clip_folder()
    crops = real_crops()
    ref_img, ref_txt = open_clip_reference(folder, crops, TEXTS)
    enc = load_open_clip_dir(folder, device="cpu")
    img, txt = rsgeo_embeddings(enc, crops, TEXTS)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    assert enc.embedding_dim == 32 and enc.image_spec.size == 64


def test_rs_m_clip_published_layout_loads_offline_with_checkpoint_folder(no_network: None) -> None:
    """``hf_model_name: xlm-roberta-base`` resolves without the hub; same embeddings as above."""
    from rsgeo.zoo.loading import load_open_clip_dir

    folder = rs_m_clip_layout_folder()
    assert json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]["text_cfg"]["hf_model_name"] == "xlm-roberta-base"
    enc = load_encoder("rs-m-clip", checkpoint=str(folder), device="cpu")
    ref = load_open_clip_dir(xlmr_clip_folder(), device="cpu")
    crops = real_crops()[:2]
    img, txt = rsgeo_embeddings(enc, crops, TEXTS)
    ref_img, ref_txt = rsgeo_embeddings(ref, crops, TEXTS)
    np.testing.assert_allclose(img, ref_img, atol=1e-6)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-6)
    assert enc.identity.model_id == "rs-m-clip"
    assert enc.languages == RS_M_CLIP_LANGUAGES
    assert enc.templates("pt")[0] == "uma foto de satélite de {}."


def test_portuguese_and_chinese_queries_use_the_xlmr_tokenizer() -> None:
    """Point 4: the XLM-R tokenizer (transformers), not CLIP's English byte-pair encoding."""
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer
    from transformers import PreTrainedTokenizerBase

    enc = load_encoder("rs-m-clip", checkpoint=str(rs_m_clip_layout_folder()), device="cpu")
    assert isinstance(enc.tokenizer, HFTokenizer)
    assert isinstance(enc.tokenizer.tokenizer, PreTrainedTokenizerBase)
    assert "XLMRoberta" in type(enc.tokenizer.tokenizer).__name__
    pt, zh = MULTILINGUAL_QUERIES["pt"], MULTILINGUAL_QUERIES["zh"]
    ids = enc.tokenizer([pt, zh]).numpy()
    bpe = SimpleTokenizer(context_length=ids.shape[1])([pt, zh]).numpy()
    assert ids.shape == bpe.shape
    assert not np.array_equal(ids, bpe)
    # XLM-R layout: <s>=0 first, </s>=2 closing, <pad>=1 after; CLIP's BPE starts with 49406.
    assert (ids[:, 0] == 0).all() and (bpe[:, 0] == 49406).all()
    for row in ids:
        content = row[1 : list(row).index(2)]
        assert len(content) >= 2 and not (content == 3).all(), "the query is tokenised, not all <unk>"
    expected = enc.tokenizer.tokenizer(pt)["input_ids"]
    assert list(ids[0, : len(expected)]) == expected
    emb = enc.encode_texts([pt, zh, MULTILINGUAL_QUERIES["en"]])
    assert np.isfinite(emb).all() and np.abs(emb[0] - emb[1]).max() > 1e-3


def _fake_hub_snapshot(cache: Path, repo: str, revision: str, files: dict[str, Path]) -> Path:
    """The Hugging Face cache layout (models--org--name/snapshots/<rev>/...) with these files."""
    snap = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, snap / name)
    return snap


def test_rs_m_clip_from_the_hf_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    """A cached copy at the pinned revision is used with no network (HF_HUB_OFFLINE set)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    record = get_model("rs-m-clip")
    src = rs_m_clip_layout_folder()
    files = {f.filename: src / f.filename for f in record.files if (src / f.filename).exists()}
    # The tiny tokenizer has no sentencepiece model or special-tokens map: stand-ins keep the layout.
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<pad>"}))
    (tmp_path / "sentencepiece.bpe.model").write_bytes(b"")
    files["special_tokens_map.json"] = tmp_path / "special_tokens_map.json"
    files["sentencepiece.bpe.model"] = tmp_path / "sentencepiece.bpe.model"
    files["config.json"] = src / "config.json"  # the tiny tower's config (the real one comes from rsgeo)
    cache = tmp_path / "hub"
    snap = _fake_hub_snapshot(cache, record.repo, record.revision, files)
    monkeypatch.setenv("RSGEO_CACHE_DIR", str(cache))
    enc = load_encoder("rs-m-clip", device="cpu")
    assert enc.identity.model_id == "rs-m-clip"
    from rsgeo.encoders.torch_clip import file_sha256

    assert enc.identity.weights_sha256 == file_sha256(snap / "open_clip_model.safetensors")
    ref = load_encoder("rs-m-clip", checkpoint=str(src), device="cpu")
    np.testing.assert_allclose(enc.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=1e-6)


def test_offline_and_not_cached_names_the_file_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSGEO_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsNotAvailableError) as err:
        load_encoder("rs-m-clip")
    message = str(err.value)
    assert time.monotonic() - start < 5
    assert "\n" not in message
    rev = get_model("rs-m-clip").revision
    assert "open_clip_model.safetensors" in message and f"joaodaniel/RS-M-CLIP/tree/{rev}" in message
    assert "--model rs-m-clip --checkpoint DIR" in message and "HF_HUB_OFFLINE" in message
    # Not offline by configuration but the hub does not answer: decided within seconds, same kind of line.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("rsgeo.zoo.hub.hub_endpoint", lambda: "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(WeightsNotAvailableError, match="cannot be reached"):
        load_encoder("remoteclip-vit-b-32")
    assert time.monotonic() - start < 10


def test_corrupted_and_mismatched_weights_fail_clearly(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    src = rs_m_clip_layout_folder()
    truncated = tmp_path / "truncated"
    shutil.copytree(src, truncated)
    weights = truncated / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match="cannot read checkpoint .*truncated"):
        load_encoder("rs-m-clip", checkpoint=str(truncated), device="cpu")

    missing = tmp_path / "missing"
    shutil.copytree(src, missing)
    state = load_file(str(missing / "open_clip_model.safetensors"))
    dropped = min(k for k in state if k.startswith("text.transformer"))
    del state[dropped]
    state["visual.extra_head.weight"] = state["logit_scale"].clone()
    save_file(state, str(missing / "open_clip_model.safetensors"))
    with pytest.raises(ModelError) as err:
        load_encoder("rs-m-clip", checkpoint=str(missing), device="cpu")
    message = str(err.value)
    assert "does not match the architecture" in message and "1 missing" in message and "1 unexpected" in message
    assert dropped in message and "\n" not in message

    no_config = tmp_path / "no_config"
    no_config.mkdir()
    shutil.copy(src / "open_clip_model.safetensors", no_config)
    with pytest.raises(ModelError, match="open_clip_config.json is missing"):
        load_encoder("rs-m-clip", checkpoint=str(no_config), device="cpu")


@pytest.mark.slow
def test_shipped_xlm_roberta_config_builds_the_published_rs_m_clip_size(tmp_path: Path, no_network: None) -> None:
    """Without a tower config.json, rsgeo's xlm-roberta-base copy builds the full model, offline.

    Its fp32 size must be the 1.46 GB the hub lists for RS-M-CLIP's
    open_clip_model.safetensors, and tiny weights must then be rejected.
    """
    import open_clip

    from rsgeo.zoo.openclip_build import create_folder_model, load_weights_strict, read_open_clip_config

    folder = tmp_path / "rs-m-clip"
    folder.mkdir()
    cfg = {"model_cfg": open_clip.get_model_config("xlm-roberta-base-ViT-B-32"), "preprocess_cfg": {}}
    assert cfg["model_cfg"]["text_cfg"]["hf_model_name"] == "xlm-roberta-base"
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    model = create_folder_model(folder, read_open_clip_config(folder), None)
    nbytes = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    assert round(nbytes / 1e9, 2) == 1.46
    with pytest.raises(ModelError, match=r"does not match the architecture: \d+ tensors differ in shape"):
        load_weights_strict(model, rs_m_clip_layout_folder() / "open_clip_model.safetensors")


def test_folder_model_with_random_weights_is_finite_and_seeded(tmp_path: Path) -> None:
    """``random_weights=True`` draws seeded weights; the default draws none (loaded next)."""
    import open_clip
    import torch

    from rsgeo.zoo.openclip_build import create_folder_model, read_open_clip_config

    folder = tmp_path / "vit"
    folder.mkdir()
    cfg = {"model_cfg": open_clip.get_model_config("ViT-B-32"), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    config = read_open_clip_config(folder)
    first = create_folder_model(folder, config, None, random_weights=True).state_dict()
    torch.manual_seed(123)  # the caller's generator state does not matter
    second = create_folder_model(folder, config, None, random_weights=True).state_dict()
    assert all(torch.isfinite(v).all() for v in first.values())
    assert all(torch.equal(first[k], second[k]) for k in first)
    undrawn = create_folder_model(folder, config, None).state_dict()
    drawn_params = [k for k in first if k.endswith("weight") and first[k].ndim == 2]
    assert any(not torch.equal(first[k], undrawn[k]) for k in drawn_params)
