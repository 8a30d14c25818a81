"""transformers CLIPModel folders behind the Encoder seam (clip-rsicd-v2's format)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rsgeo.zoo import load_encoder
from rsgeo.encoders.hf_clip import image_spec_from_preprocessor
from rsgeo.errors import MissingDependencyError, ModelError
from rsgeo.zoo.registry import get_model
from tests.test_zoo_helpers import hf_clip_folder, write_hf_clip_folder
from tests.test_zoo_openclip import real_crops, rsgeo_embeddings

TEXTS = ["a satellite photo of a stadium.", "an aerial photograph of farmland", "river"]


def transformers_reference(folder: Path, crops: list[np.ndarray], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The model card's way: CLIPProcessor + CLIPModel forward (image_embeds, text_embeds)."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(folder)).eval()
    # The PIL image processor (the model card era); transformers 5 defaults to a torchvision one
    # whose antialiased resize differs by ~1e-4.
    processor = CLIPProcessor.from_pretrained(str(folder), use_fast=False)
    images = [Image.fromarray(np.ascontiguousarray(c)) for c in crops]
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    return out.image_embeds.numpy(), out.text_embeds.numpy()


def test_hf_clip_folder_equals_the_transformers_forward() -> None:
    folder = hf_clip_folder()
    # Square crops: CLIPImageProcessor rounds a centre crop's offset down, torchvision rounds it to
    # nearest, so odd-sized non-square inputs may shift by one pixel (documented in docs/models.md).
    crops = [c for c in real_crops() if c.shape[0] == c.shape[1]] + [real_crops()[2][:100, :100]]
    ref_img, ref_txt = transformers_reference(folder, crops, TEXTS)
    for model in (f"hf-clip:{folder}", str(folder)):  # the schema, or a folder recognised by its config.json
        enc = load_encoder(model, device="cpu")
        img, txt = rsgeo_embeddings(enc, crops, TEXTS)
        np.testing.assert_allclose(img, ref_img, atol=1e-5)
        np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    assert enc.embedding_dim == 24 and enc.image_spec.size == 64
    assert enc.identity.model_id == f"hf-clip:{folder}" or enc.identity.model_id.endswith(str(folder))


def test_the_hf_tokenizer_is_clips_byte_pair_vocabulary() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    enc = load_encoder(f"hf-clip:{hf_clip_folder()}", device="cpu")
    ids = enc.tokenizer(TEXTS[0])["input_ids"]
    assert ids == SimpleTokenizer()([TEXTS[0]])[0][: len(ids)].tolist()


def test_registry_model_from_a_cached_snapshot_with_pytorch_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """clip-rsicd-v2 follows ``main``: the cache resolves refs/main to the snapshot; pytorch_model.bin is read."""
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    record = get_model("clip-rsicd-v2")
    src = hf_clip_folder()
    repo_dir = tmp_path / "hub" / "models--flax-community--clip-rsicd-v2"
    commit = "1" * 40
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    torch.save(load_file(str(src / "model.safetensors")), snap / "pytorch_model.bin")
    (snap / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<|endoftext|>"}))
    for f in record.files[1:]:
        if (src / f.filename).exists():
            shutil.copy(src / f.filename, snap / f.filename)
    enc = load_encoder("clip-rsicd-v2", cache_dir=str(tmp_path / "hub"), device="cpu")
    ref = load_encoder(f"hf-clip:{src}", device="cpu")
    np.testing.assert_allclose(enc.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=1e-6)
    assert enc.identity.model_id == "clip-rsicd-v2" and enc.identity.extra["weights"] == "pytorch_model.bin"
    assert enc.templates("en") == record.templates["en"]


def test_mismatched_or_corrupt_weights_fail_clearly(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    src = hf_clip_folder()
    other = write_hf_clip_folder(tmp_path / "other", projection_dim=16)
    shaped = tmp_path / "shaped"
    shutil.copytree(src, shaped)
    shutil.copy(other / "model.safetensors", shaped / "model.safetensors")
    with pytest.raises(ModelError, match=r"do not match its config.json: 2 mismatched keys .*projection"):
        load_encoder(f"hf-clip:{shaped}", device="cpu")

    missing = tmp_path / "missing"
    shutil.copytree(src, missing)
    state = load_file(str(missing / "model.safetensors"))
    state.pop("visual_projection.weight")
    save_file(state, str(missing / "model.safetensors"))
    with pytest.raises(ModelError, match=r"1 missing keys .*visual_projection.weight"):
        load_encoder(f"hf-clip:{missing}", device="cpu")

    truncated = tmp_path / "truncated"
    shutil.copytree(src, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    with pytest.raises(ModelError, match="may be truncated"):
        load_encoder(f"hf-clip:{truncated}", device="cpu")


def test_missing_transformers_gives_the_pip_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers → ImportError
    monkeypatch.setenv("RSGEO_CACHE_DIR", str(tmp_path))
    for model in ("clip-rsicd-v2", f"hf-clip:{hf_clip_folder()}"):
        with pytest.raises(MissingDependencyError, match=r"pip install 'rsgeo\[transformers\]'"):
            load_encoder(model, device="cpu")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "resample": 3}, (224, "shortest", "bicubic")),
        ({"size": 224, "crop_size": 224, "resample": 3}, (224, "shortest", "bicubic")),  # transformers 4.2x files
        ({"size": {"height": 336, "width": 336}, "do_center_crop": False, "resample": 2}, (336, "squash", "bilinear")),
    ],
)
def test_preprocessor_config_to_image_spec(tmp_path: Path, config: dict, expected: tuple) -> None:
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**config, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    spec = image_spec_from_preprocessor(tmp_path, 224)
    assert (spec.size, spec.resize_mode, spec.interpolation) == expected
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.25, 0.25, 0.25)


def test_unsupported_preprocessing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}})
    )
    with pytest.raises(ModelError, match="resize to 256 then crop to 224 is not supported"):
        image_spec_from_preprocessor(tmp_path, 224)
    assert image_spec_from_preprocessor(tmp_path / "absent", 96).size == 96
