"""A warm start (issue 16): an engine run of a model exported before builds no torch model.

The first engine run writes the model's card (rsgeo.engines.cards); a later run
loaded the same way reads it and runs the cached export, building the model
only for what needs it (a text). These use the real tiny open_clip ViT of
``tiny_clip_dir`` and ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rsgeo
from rsgeo.definitions import schema
from rsgeo.engines.cards import CARDS_FOLDER
from rsgeo.engines.encoder import EngineEncoder
from rsgeo.zoo.load_keys import load_key
from rsgeo.zoo.loading import load_encoder
from tests.conftest import ROOT, shared

pytest.importorskip("onnxruntime", reason="the engines' tests need pip install 'rsgeo[onnxruntime]' (in the test extra)")


def chips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def load(folder: Path, cache: Path) -> EngineEncoder:
    encoder = load_encoder(f"local-dir:{folder}", device="cpu", engine="onnxruntime", cache_dir=str(cache))
    assert isinstance(encoder, EngineEncoder)
    return encoder


def test_a_second_run_starts_from_the_card_and_builds_the_model_only_for_texts(tiny_clip_dir: Path, tmp_path: Path) -> None:
    cold = load(tiny_clip_dir, tmp_path)
    assert cold.model_built
    a = cold.encode_images(chips(3))
    cards = list((tmp_path / schema.ENGINE_CACHE_FOLDER / CARDS_FOLDER).iterdir())
    assert len(cards) == 1 and json.loads(cards[0].read_text())["identity"] == {
        "model_id": cold.identity.model_id, "weights_sha256": cold.identity.weights_sha256,
        "extra": cold.identity.extra,
    }
    warm = load(tiny_clip_dir, tmp_path)
    assert not warm.model_built  # the card was enough to start
    for attr in ("identity", "image_spec", "logit_scale", "embedding_dim", "languages", "training_extent_m"):
        assert getattr(warm, attr) == getattr(cold, attr), attr
    np.testing.assert_array_equal(warm.encode_images(chips(3)), a)  # the cached export, bit for bit
    assert not warm.model_built and warm.exports == [(cold.exports[0][0], False)]
    texts = warm.encode_texts(["forest", "a river"])  # needs the text tower: the model is built now
    assert warm.model_built
    np.testing.assert_array_equal(texts, cold.encode_texts(["forest", "a river"]))


def test_a_new_batch_shape_after_a_warm_start_builds_the_model_and_exports(tiny_clip_dir: Path, tmp_path: Path) -> None:
    load(tiny_clip_dir, tmp_path).encode_images(chips(2))
    warm = load(tiny_clip_dir, tmp_path)
    out = warm.encode_images(chips(5))  # batch shape 5: not exported yet
    assert warm.model_built and warm.exports[0][1]
    np.testing.assert_allclose(out, load(tiny_clip_dir, tmp_path / "other").encode_images(chips(5)), atol=1e-6)


def test_changed_weights_are_another_key_and_never_start_from_the_old_card(tiny_clip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, folder)
    before = load_key(f"local-dir:{folder}", None)
    load(folder, tmp_path / "cache").encode_images(chips(2))
    weights = folder / "open_clip_model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # rewritten (here: touched)
    assert load_key(f"local-dir:{folder}", None) != before
    assert load(folder, tmp_path / "cache").model_built


def test_names_that_may_change_without_a_local_file_have_no_card(tiny_clip_dir: Path, tmp_path: Path) -> None:
    assert load_key("hf-hub:joaodaniel/RS-M-CLIP", None) is None  # follows the hub
    assert load_key("test:hash", None) is None
    assert load_key(f"local-dir:{tmp_path / 'missing'}", None) is None
    assert load_key(f"local-dir:{tiny_clip_dir}", None) is not None
    assert load_key(f"local-dir:{tiny_clip_dir}", None) != load_key(f"local-dir:{tiny_clip_dir}", tiny_clip_dir / "open_clip_model.safetensors")


def test_a_warm_cli_run_imports_neither_open_clip_nor_onnx_and_stores_what_a_cold_one_stores(tiny_clip_dir: Path, tmp_path: Path) -> None:
    scene = shared("L7_ETMs.tif")
    code = (
        "import sys\n"
        "from rsgeo.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('open_clip' in sys.modules, 'transformers' in sys.modules, 'onnx' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    outputs = {}
    for run in ("cold", "warm"):
        out = outputs[run] = tmp_path / f"{run}.gpkg"
        done = subprocess.run(
            [sys.executable, "-c", code, "embed", str(scene), "-o", str(out), "--model", f"local-dir:{tiny_clip_dir}",
             "--engine", "onnxruntime", "--cache-dir", str(tmp_path / "cache"), "--bands", "3,2,1", "--chip-size", "112",
             "-q"],
            capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stderr
        open_clip, transformers, onnx = done.stdout.split()
        assert open_clip == ("True" if run == "cold" else "False"), (run, done.stdout)
        if run == "warm":  # nor what only an export needs
            assert transformers == onnx == "False", done.stdout
    cold, warm = (rsgeo.open_result(outputs[r]) for r in ("cold", "warm"))
    np.testing.assert_array_equal(warm.index.embeddings, cold.index.embeddings)
    assert warm.metadata[schema.KEY_MODEL] == cold.metadata[schema.KEY_MODEL]


def test_an_engine_encoder_keeps_the_models_training_extent(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from rsgeo.engines import choose, with_engine
    from rsgeo.zoo.loading import load_open_clip_dir

    base = load_open_clip_dir(tiny_clip_dir, device="cpu")
    base.training_extent_m = 2240.0  # as the registry sets it (the default chip follows from it)
    wrapped = with_engine(base, choose("onnxruntime", "fp32", device="cpu", exportable=True, model="m"), tmp_path)
    assert isinstance(wrapped, EngineEncoder) and wrapped.training_extent_m == 2240.0



@pytest.mark.slow
def test_the_startup_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--arch", "ViT-S-32", "--rounds", "1",
         "--data-dir", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    assert {"import torch", "embed torch fp32", "embed onnxruntime int8 (warm)"} <= set(figures)
    for name, fig in figures.items():  # the figures, never their values (a shared CI machine)
        assert fig["median_s"] > 0 and fig["peak_rss_mb"] > 0 and len(fig["walls_s"]) == 1, name
    assert "above torch" in done.stdout
