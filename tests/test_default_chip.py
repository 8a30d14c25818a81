"""The GSD-aware default chip, the few-tiles warning, and the reproducibility metadata (issue 18).

The default chip is the ground side of the model's training images (a field of
its registry record) in the scene's pixels, clamped to 16..896 px: on a real
10 m Sentinel-2 scene and a real 28.5 m Landsat scene it must cover a ground
size of the order of the training images, not 2.2 km or 6.4 km as the model's
224 px input would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import rsgeo
from rsgeo.definitions import schema
from rsgeo.encoders.testing import HashEncoder
from rsgeo.errors import ResultError
from rsgeo.grid import MAX_DEFAULT_CHIP_PX, MIN_DEFAULT_CHIP_PX, default_chip_px
from rsgeo.options import RunOptions
from rsgeo.scene import ReadOptions, Scene
from rsgeo.zoo.registry import MODELS, get_model
from tests.conftest import TINY_CLIP_CFG, run_cli, shared

S2 = "eolearn/s2_l1c_scene2_13band.tif"  # 10 m, 100 x 101 px
LANDSAT = "L7_ETMs.tif"  # 28.5 m, 349 x 352 px


def metadata(path: Path) -> dict:
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT key, value FROM {schema.METADATA_TABLE}").fetchall()
    return {k: json.loads(v) for k, v in rows}


@pytest.mark.parametrize("pixel_m", [0.1, 0.3, 1.0, 3.0, 10.0, 28.5, 300.0])
@pytest.mark.parametrize("extent_m", [78.0, 200.0, 640.0])
def test_default_chip_is_the_training_extent_within_bounds(pixel_m: float, extent_m: float) -> None:
    px = default_chip_px(224, pixel_m, extent_m)
    assert MIN_DEFAULT_CHIP_PX <= px <= MAX_DEFAULT_CHIP_PX
    if MIN_DEFAULT_CHIP_PX < extent_m / pixel_m < MAX_DEFAULT_CHIP_PX:
        assert abs(px * pixel_m - extent_m) <= pixel_m / 2 + 1e-9


def test_unknown_training_extent_keeps_the_model_input() -> None:
    assert default_chip_px(224, 10.0, None) == 224
    assert default_chip_px(336, 0.5, None) == 336


def test_every_registered_model_but_the_web_baseline_states_its_training_scale() -> None:
    for record in MODELS:
        if record.name == "openai-vit-b-32":  # web photos: no ground extent
            assert record.training_scale is None
            continue
        assert record.training_scale is not None, record.name
        assert 50 <= record.training_scale.extent_m <= 2000
        assert "estimate" in record.training_scale.source or "px" in record.training_scale.source


@pytest.mark.parametrize(
    ("scene", "bands", "low_m", "high_m"),
    [(S2, (4, 3, 2), 150.0, 400.0), (LANDSAT, (3, 2, 1), 300.0, 1000.0)],
)
def test_default_chip_on_real_scenes_has_a_sensible_ground_size(
    scene: str, bands: tuple[int, ...], low_m: float, high_m: float
) -> None:
    extent = get_model("rs-m-clip").training_scale.extent_m  # type: ignore[union-attr]
    with Scene(shared(scene), ReadOptions(bands=bands)) as opened:
        grid = opened.grid(224, extent)
        ground_m = grid.spec.size_px * opened.pixel_size_m
        old = opened.grid(224)  # the input-size default, for comparison
    assert low_m <= ground_m <= high_m, ground_m
    assert len(grid) >= 16  # no few-tiles warning on either scene
    assert len(old) < 16  # the old default: 1 tile on the Sentinel-2 subset, 4 on Landsat
    assert grid.spec.stride_px == grid.spec.size_px  # the stride follows the chip (no overlap)


def test_a_given_chip_size_still_wins_in_pixels_and_metres() -> None:
    with Scene(shared(LANDSAT), ReadOptions(chip_size=64, bands=(3, 2, 1))) as opened:
        assert opened.chip_spec(224, 200.0).size_px == 64
    with Scene(shared(LANDSAT), ReadOptions(chip_size="1710m", bands=(3, 2, 1))) as opened:
        assert opened.chip_spec(224, 200.0).size_px == 60


def test_fresh_run_records_the_default_chip_the_rounding_and_the_command(tmp_path: Path) -> None:
    encoder = HashEncoder()
    encoder.training_extent_m = 200.0
    out = tmp_path / "s2.gpkg"
    rsgeo.classify(
        shared(S2), out, classes=["water", "forest"], read=ReadOptions(bands=(4, 3, 2)),
        options=RunOptions(encoder=encoder), command=["rsgeo", "classify", "s2.tif", "-o", "s2.gpkg"],
    )
    meta = metadata(out)
    assert meta[schema.KEY_GRID]["size_px"] == 20
    default = meta[schema.KEY_READ][schema.READ_DEFAULT_CHIP]
    assert (default["training_extent_m"], default["size_px"]) == (200.0, 20)
    assert default["pixel_size_m"] == pytest.approx(10.0, rel=1e-3)
    assert meta[schema.KEY_READ][schema.READ_ROUNDING] == schema.ROUNDING_HALF_EVEN
    assert meta[schema.KEY_RUN]["command"] == "rsgeo classify s2.tif -o s2.gpkg"
    assert meta[schema.KEY_RUN][schema.RUN_ARGV] == ["rsgeo", "classify", "s2.tif", "-o", "s2.gpkg"]


def test_cli_warns_once_on_few_tiles_and_records_its_argv(tmp_path: Path) -> None:
    out = tmp_path / "few.gpkg"
    # test:hash states no training scale: its 224 px input covers the whole 100 x 101 px scene.
    done = run_cli("classify", str(shared(S2)), "-o", str(out), "--model", "test:hash", "--bands", "4,3,2",
                   "--classes", "water,forest", "--progress", "none")
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, done.stderr
    assert "only 1 tile" in warnings[0] and "--chip-size" in warnings[0]
    run = metadata(out)[schema.KEY_RUN]
    assert run[schema.RUN_ARGV][:3] == ["rsgeo", "classify", str(shared(S2))]
    assert "--classes water,forest" in run["command"]
    again = run_cli("classify", str(shared(S2)), "-o", str(tmp_path / "many.gpkg"), "--model", "test:hash",
                    "--bands", "4,3,2", "--classes", "water,forest", "--chip-size", "200m", "--progress", "none")
    assert "WARNING" not in again.stderr


def test_stretch_rounds_half_to_even() -> None:
    import numpy as np

    from rsgeo.stretch import Stretch

    # (x - 0) * 255 / 255 = x: the halves 0.5, 1.5, 2.5 go to 0, 2, 2 (truncation gives 0, 1, 2).
    data = np.array([[[0.5, 1.5, 2.5, 3.49, 254.5]]], np.float32)
    out = Stretch("range", (0.0,), (255.0,)).apply(data)
    assert out.tolist() == [[[0, 2, 2, 3, 254]]]


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A small open_clip architecture and a state-dict checkpoint of it (RemoteCLIP's file format)."""
    import numpy as np
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("archs")
    (folder / "rsgeo-test-gsd-vit.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(folder)
    torch.manual_seed(1)
    model = open_clip.create_model("rsgeo-test-gsd-vit")
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(100.0)))
    checkpoint = folder / "weights.pt"
    torch.save(model.state_dict(), checkpoint)
    return "arch:rsgeo-test-gsd-vit", checkpoint


def test_stored_checkpoint_answers_follow_up_queries(tiny_arch: tuple[str, Path], tmp_path: Path) -> None:
    import hashlib

    model, checkpoint = tiny_arch
    out = tmp_path / "arch.gpkg"
    rsgeo.embed(shared(LANDSAT), out, read=ReadOptions(chip_size=64, bands=(3, 2, 1)),
                options=RunOptions(model=model, checkpoint=str(checkpoint)))
    recorded = metadata(out)[schema.KEY_MODEL][schema.MODEL_CHECKPOINT]
    assert recorded == {"path": str(checkpoint.resolve()), "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()}
    # No checkpoint given: the recorded one is loaded (random weights would be refused as other weights).
    rsgeo.classify(out, None, classes=["water", "urban"], options=RunOptions(model=model))
    assert "landcover" in metadata(out)[schema.KEY_LAYERS]
    moved = checkpoint.with_name("elsewhere.pt")
    checkpoint.rename(moved)
    try:
        with pytest.raises(ResultError, match=r"weights\.pt, which is missing.*--checkpoint"):
            rsgeo.query(out, None, texts=["a harbour"], options=RunOptions(model=model))
    finally:
        moved.rename(checkpoint)
