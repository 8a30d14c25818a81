"""rsgeo's class scores equal the model README computation (issue 2, point 4).

The reference is written the way the RS CLIP model READMEs do it: open_clip's
own ``preprocess`` on a PIL image of each chip, ``encode_image``,
``encode_text``, normalise, ``(scale * img @ txt.T).softmax(-1)``, for the same
randomly initialised ViT-B-32. Chips are read here with rasterio directly,
not through rsgeo.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import open_clip
import pyogrio
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.windows import Window

import rsgeo
from rsgeo.encoders.base import EncoderIdentity
from rsgeo.encoders.openclip import OpenClipEncoder, image_spec_from_open_clip
from rsgeo.pipeline import RunOptions
from rsgeo.prompts import DEFAULT_TEMPLATES
from rsgeo.scene import ReadOptions
from tests.conftest import shared

CLASSES = ["dense forest", "open sea", "urban area", "farmland"]


@pytest.fixture(scope="module")
def vit_b32() -> tuple[torch.nn.Module, object, object]:
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(100.0)))  # the published models' scale
    model.eval()
    return model, preprocess, open_clip.get_tokenizer("ViT-B-32")


def reference_scores(model, preprocess, tokenizer, chips: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        images = torch.stack([preprocess(Image.fromarray(c)) for c in chips])
        img = model.encode_image(images)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = []
        for name in CLASSES:
            e = model.encode_text(tokenizer([t.format(name) for t in DEFAULT_TEMPLATES]))
            e = e / e.norm(dim=-1, keepdim=True)
            e = e.mean(dim=0)
            txt.append(e / e.norm())
        txt = torch.stack(txt)
        scale = model.logit_scale.exp()
        return (scale * img @ txt.T).softmax(dim=-1).numpy()


def run_rsgeo(model, tokenizer, scene: Path, out: Path, read: ReadOptions) -> tuple[object, dict]:
    encoder = OpenClipEncoder(
        model, tokenizer, image_spec=image_spec_from_open_clip(model),
        identity=EncoderIdentity("arch:ViT-B-32"), device="cpu",
    )
    rsgeo.classify(scene, out, classes=CLASSES, read=read, options=RunOptions(encoder=encoder, batch_size=8))
    df = pyogrio.read_dataframe(out, layer="landcover").sort_values("tile_id")
    with sqlite3.connect(out) as db:
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM rsgeo_metadata")}
    return df, meta


def window_of(row: int, col: int, width: int, height: int, size: int, stride: int) -> Window:
    w, h = min(size, width), min(size, height)
    return Window(min(col * stride, width - w), min(row * stride, height - h), w, h)


@pytest.mark.slow
@pytest.mark.parametrize("chip_size", [224, 160, 300], ids=["native-224", "upsampled-160", "downsampled-300"])
def test_scores_match_readme_reference_landsat(vit_b32, tmp_path: Path, chip_size: int) -> None:
    model, preprocess, tokenizer = vit_b32
    scene = shared("L7_ETMs.tif")
    df, meta = run_rsgeo(model, tokenizer, scene, tmp_path / "out.gpkg", ReadOptions(bands=(3, 2, 1), chip_size=chip_size))
    assert meta["model"]["image_spec"]["size"] == 224
    chips = []
    with rasterio.open(scene) as src:
        for r in df.itertuples():
            win = window_of(r.row, r.col, src.width, src.height, chip_size, chip_size)
            chips.append(np.ascontiguousarray(src.read((3, 2, 1), window=win).transpose(1, 2, 0)))
    ref = reference_scores(model, preprocess, tokenizer, chips)
    got = df[["dense_forest", "open_sea", "urban_area", "farmland"]].to_numpy()
    assert len(got) >= 4
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    # The scores are not trivially uniform: the test would see a wrong chip.
    assert ref.max() - ref.min() > 1e-3


@pytest.mark.slow
def test_scores_match_reference_for_a_nonsquare_float_scene(vit_b32, tmp_path: Path) -> None:
    """Sentinel-2 float reflectance, 100 x 101 px: one clamped, non-square chip,
    stretched scene-wide then resized and centre-cropped like ``preprocess``."""
    model, preprocess, tokenizer = vit_b32
    scene = shared("eolearn/s2_l1c_scene2_13band.tif")
    df, meta = run_rsgeo(model, tokenizer, scene, tmp_path / "out.gpkg", ReadOptions(bands=(4, 3, 2)))
    assert len(df) == 1
    stretch = meta["read"]["stretch"]
    with rasterio.open(scene) as src:
        data = src.read((4, 3, 2)).astype(np.float64)
        # The stretch is scene-wide: the 2nd/98th percentiles of each band.
        np.testing.assert_allclose(stretch["low"], np.percentile(data, 2, axis=(1, 2)), rtol=1e-5)
        np.testing.assert_allclose(stretch["high"], np.percentile(data, 98, axis=(1, 2)), rtol=1e-5)
    low = np.asarray(stretch["low"]).reshape(3, 1, 1)
    high = np.asarray(stretch["high"]).reshape(3, 1, 1)
    chip = np.rint(np.clip((data.astype(np.float32) - low.astype(np.float32)) * (255.0 / (high - low).astype(np.float32)), 0, 255))
    chip = chip.astype(np.uint8).transpose(1, 2, 0)
    ref = reference_scores(model, preprocess, tokenizer, [np.ascontiguousarray(chip)])
    got = df[["dense_forest", "open_sea", "urban_area", "farmland"]].to_numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
