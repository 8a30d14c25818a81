"""Inference engines for the image tower (issue 16): export cache, choice, missing extras, metadata.

The model is the thing under test here, so these use a real (tiny, random)
open_clip ViT from a ``local-dir`` folder; tests/test_engines_fidelity.py runs
the real ViT-B-32 on a real scene.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import rsgeo
from rsgeo.definitions import schema
from rsgeo.engines import choose, extras
from rsgeo.engines.cpu import flags_of, has_bf16_hardware
from rsgeo.errors import MissingDependencyError, ModelError, OptionError
from rsgeo.options import RunOptions
from rsgeo.scene import ReadOptions
from rsgeo.zoo.loading import load_encoder
from tests.conftest import shared

pytest.importorskip("onnxruntime", reason="the engines' tests need pip install 'rsgeo[onnxruntime]' (in the test extra)")


def chips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def tiny(folder: Path, cache: Path, engine: str = "onnxruntime", precision: str = "fp32") -> object:
    return load_encoder(f"local-dir:{folder}", device="cpu", engine=engine, precision=precision, cache_dir=str(cache))


# -- the export cache ----------------------------------------------------------------------


def test_the_export_is_made_once_and_reused_by_the_next_run(tiny_clip_dir: Path, tmp_path: Path) -> None:
    first = tiny(tiny_clip_dir, tmp_path)
    a = first.encode_images(chips(3))  # type: ignore[attr-defined]
    (path, made), = first.exports  # type: ignore[attr-defined]
    assert made and path.is_file() and path.name == schema.ENGINE_ONNX_FILE
    assert path.is_relative_to(tmp_path / schema.ENGINE_CACHE_FOLDER)
    stamp = path.stat().st_mtime_ns
    second = tiny(tiny_clip_dir, tmp_path)  # a new run: a new encoder, the same cache
    b = second.encode_images(chips(3))  # type: ignore[attr-defined]
    assert second.exports == [(path, False)]  # type: ignore[attr-defined]
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(a, b)
    key = json.loads((path.parent / schema.ENGINE_KEY_FILE).read_text())
    assert key["batch"] == 3 and key["weights_sha256"] == first.identity.weights_sha256  # type: ignore[attr-defined]


def test_changed_weights_and_another_batch_shape_export_again(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "cache"
    base = tiny(tiny_clip_dir, cache)
    base.encode_images(chips(2))  # type: ignore[attr-defined]
    (path, _), = base.exports  # type: ignore[attr-defined]
    base.encode_images(chips(4))  # another batch shape: another file
    (other_shape, made), = base.exports[1:]  # type: ignore[attr-defined]
    assert made and other_shape != path
    changed = tmp_path / "changed"
    shutil.copytree(tiny_clip_dir, changed)
    weights = changed / "open_clip_model.safetensors"
    tensors = load_file(str(weights))
    import torch

    proj = tensors["visual.proj"]
    tensors["visual.proj"] = proj + torch.randn(proj.shape, generator=torch.Generator().manual_seed(1)) * proj.std()
    save_file(tensors, str(weights))
    retrained = load_encoder(f"local-dir:{changed}", device="cpu", engine="onnxruntime", cache_dir=str(cache))
    assert retrained.identity.weights_sha256 != base.identity.weights_sha256
    out = retrained.encode_images(chips(2))  # type: ignore[attr-defined]
    (new_path, made), = retrained.exports  # type: ignore[attr-defined]
    assert made and new_path != path
    assert not np.allclose(out, base.encode_images(chips(2)), atol=1e-3)  # type: ignore[attr-defined]


def test_concurrent_exports_of_one_key_leave_one_whole_file(tiny_clip_dir: Path, tmp_path: Path) -> None:
    encoders = [tiny(tiny_clip_dir, tmp_path) for _ in range(3)]
    outputs: list[np.ndarray] = []
    errors: list[BaseException] = []

    def run(encoder: object) -> None:
        try:
            outputs.append(encoder.encode_images(chips(2)))  # type: ignore[attr-defined]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in encoders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    folder = encoders[0].exports[0][0].parent  # type: ignore[attr-defined]
    assert sorted(p.name for p in folder.iterdir()) == [schema.ENGINE_ONNX_FILE, schema.ENGINE_KEY_FILE]
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])
    # A later run reads the file the racers left.
    later = tiny(tiny_clip_dir, tmp_path)
    np.testing.assert_array_equal(later.encode_images(chips(2)), outputs[0])  # type: ignore[attr-defined]


def test_int8_is_derived_from_the_cached_export_and_cached_too(tiny_clip_dir: Path, tmp_path: Path) -> None:
    enc = tiny(tiny_clip_dir, tmp_path, precision="int8")
    q = enc.encode_images(chips(2))  # type: ignore[attr-defined]
    (onnx_path, _), (int8_path, made) = enc.exports  # type: ignore[attr-defined]
    assert made and int8_path.name == schema.ENGINE_INT8_FILE and int8_path.parent.parent == onnx_path.parent
    assert enc.engine.precision == "int8"  # type: ignore[attr-defined]
    again = tiny(tiny_clip_dir, tmp_path, precision="int8")
    again.encode_images(chips(2))  # type: ignore[attr-defined]
    assert [m for _, m in again.exports] == [False, False]  # type: ignore[attr-defined]
    fp32 = tiny(tiny_clip_dir, tmp_path).encode_images(chips(2))  # type: ignore[attr-defined]
    cos = np.sum(q * fp32, axis=1)
    assert np.all(cos > 0.9) and not np.array_equal(q, fp32)


# -- which engine ---------------------------------------------------------------------------


def only(*names: str):  # noqa: ANN202 - a predicate for choose()
    return lambda engine: engine == "torch" or engine in names


def test_auto_keeps_torch_at_fp32_and_on_the_gpu() -> None:
    every = only("onnxruntime", "openvino")
    assert choose("auto", "fp32", device="cpu", exportable=True, model="m", installed=every).engine == "torch"
    assert choose("auto", "bf16", device="cuda", exportable=True, model="m", installed=every).engine == "torch"
    assert choose("auto", "bf16", device="cpu", exportable=False, model="test:hash", installed=every).engine == "torch"


def test_auto_takes_the_fastest_installed_engine_and_falls_back() -> None:
    kw = {"device": "cpu", "exportable": True, "model": "m"}
    assert choose("auto", "bf16", installed=only("openvino"), bf16_hardware=True, **kw).engine == "openvino"
    assert choose("auto", "bf16", installed=only("onnxruntime"), bf16_hardware=True, **kw).engine == "torch"
    assert choose("auto", "bf16", installed=only("openvino"), bf16_hardware=False, **kw).engine == "torch"
    assert choose("auto", "int8", installed=only("onnxruntime", "openvino"), **kw).engine == "openvino"
    assert choose("auto", "int8", installed=only("onnxruntime"), **kw).engine == "onnxruntime"
    with pytest.raises(MissingDependencyError, match=r"pip install 'rsgeo\[openvino\]'"):
        choose("auto", "int8", installed=only("openvino"), **kw)  # static int8 is calibrated by onnxruntime's tools
    with pytest.raises(MissingDependencyError, match=r"openvino int8 needs onnxruntime's quantizer.*'rsgeo\[openvino\]'"):
        choose("openvino", "int8", installed=only("openvino"), **kw)


def test_precision_auto_picks_bf16_only_with_bf16_hardware_and_never_lowers_on_its_own() -> None:
    kw = {"device": "cpu", "exportable": True, "model": "m", "installed": only("openvino")}
    picked = choose("auto", "auto", bf16_hardware=True, **kw)
    assert (picked.engine, picked.precision, picked.check_budget) == ("openvino", "bf16", True)
    assert choose("auto", "auto", bf16_hardware=False, **kw).precision == "fp32"
    assert choose("torch", "auto", bf16_hardware=True, **kw).precision == "fp32"
    assert choose("auto", "fp32", bf16_hardware=True, **kw).precision == "fp32"


def test_an_engine_refuses_what_it_does_not_serve() -> None:
    kw = {"device": "cpu", "exportable": True, "model": "m", "installed": only("onnxruntime", "openvino")}
    with pytest.raises(OptionError, match="--engine onnxruntime runs fp32 or int8, not --precision bf16"):
        choose("onnxruntime", "bf16", **kw)
    with pytest.raises(OptionError, match="--engine torch runs fp32 or bf16 or fp16, not --precision int8"):
        choose("torch", "int8", **kw)
    with pytest.raises(OptionError, match="runs on the CPU, not cuda"):
        choose("openvino", "fp32", **{**kw, "device": "cuda"})
    with pytest.raises(ModelError, match="test:hash has none"):
        choose("openvino", "fp32", **{**kw, "exportable": False, "model": "test:hash"})
    with pytest.raises(OptionError, match="unknown --engine 'tensorrt'"):
        RunOptions(engine="tensorrt")


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    flags = flags_of("processor\t: 0\nflags\t\t: fpu sse avx512_vnni amx_bf16 amx_tile\n")
    assert has_bf16_hardware(flags) and not has_bf16_hardware(flags_of("flags : fpu sse avx2\n"))


# -- a missing extra --------------------------------------------------------------------------


def test_a_missing_engine_is_one_line_with_the_pip_command(tiny_clip_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['openvino'] = None  # as if rsgeo[openvino] were not installed\n"
        "from rsgeo.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "out.gpkg"
    done = subprocess.run(
        [sys.executable, "-c", code, "embed", str(shared("L7_ETMs.tif")), "-o", str(out), "--model",
         f"local-dir:{tiny_clip_dir}", "--engine", "openvino", "--cache-dir", str(tmp_path), "--bands", "3,2,1"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "rsgeo: error: the openvino engine is not installed; install it with: pip install 'rsgeo[openvino]'"
    ]
    assert not out.exists()


def test_require_names_the_pip_command_when_the_import_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert not extras.installed("onnxruntime")
    with pytest.raises(MissingDependencyError, match=r"install it with: pip install 'rsgeo\[onnxruntime\]'"):
        extras.require("onnxruntime")


def test_the_extras_are_declared_in_pyproject() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras_ = project["optional-dependencies"]
    assert any(d.startswith("onnxruntime") for d in extras_["onnxruntime"])
    assert any(d.startswith("openvino") for d in extras_["openvino"])
    assert {"onnx", "onnxruntime", "openvino"} <= {d.split(">")[0].split("=")[0] for d in extras_["test"]}


# -- runs with an engine -----------------------------------------------------------------------


def read_meta(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as db:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM rsgeo_metadata")}


def test_a_result_records_engine_version_and_precision_and_matches_torch(tiny_clip_dir: Path, tmp_path: Path) -> None:
    import onnxruntime

    scene = shared("L7_ETMs.tif")
    read = ReadOptions(chip_size=112, bands=(3, 2, 1))  # 3 x 3 chips; batches of 4: the last one is padded
    results = {}
    for engine in ("torch", "onnxruntime"):
        out = tmp_path / f"{engine}.gpkg"
        options = RunOptions(model=f"local-dir:{tiny_clip_dir}", engine=engine, batch_size=4, cache_dir=str(tmp_path))
        results[engine] = rsgeo.classify(scene, out, classes=["forest", "sea", "city"], read=read, options=options)
        model = read_meta(out)[schema.KEY_MODEL]
        assert model[schema.MODEL_ENGINE] == engine  # type: ignore[index]
        assert model[schema.MODEL_PRECISION] == "fp32"  # type: ignore[index]
    assert read_meta(tmp_path / "onnxruntime.gpkg")[schema.KEY_MODEL][schema.MODEL_ENGINE_VERSION] == onnxruntime.__version__  # type: ignore[index]
    emb = {e: rsgeo.open_result(tmp_path / f"{e}.gpkg").index.embeddings for e in results}
    np.testing.assert_allclose(emb["onnxruntime"], emb["torch"], atol=1e-5)


# -- static int8 (OpenVINO), calibrated on the scene ------------------------------------------


def test_calibration_chips_are_spread_over_the_whole_grid_and_repeat_when_few() -> None:
    from rsgeo.engines.calibration import candidate_ids, pick

    ids = candidate_ids(1000, 8)
    assert len(ids) == 32 and ids[0] == 0 and ids[-1] == 999 and np.all(np.diff(ids) > 0)
    assert candidate_ids(5, 8).tolist() == [0, 1, 2, 3, 4]
    assert pick(np.arange(10), 4).tolist() == [0, 3, 6, 9]
    assert pick(np.arange(3), 5).tolist() == [0, 1, 2, 0, 1]
    assert len(pick(np.zeros(0, np.int64), 4)) == 0


def test_static_int8_files_are_cached_per_calibration(tiny_clip_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    outputs = {}
    for seed in (1, 2, 1):
        enc = tiny(tiny_clip_dir, tmp_path, engine="openvino", precision="int8")
        assert enc.needs_calibration  # type: ignore[attr-defined]
        enc.calibrate(chips(4, seed=seed))  # type: ignore[attr-defined]
        assert not enc.needs_calibration  # type: ignore[attr-defined]
        out = enc.encode_images(chips(4))  # type: ignore[attr-defined]
        (_, _), (static, made) = enc.exports  # type: ignore[attr-defined]
        assert static.name == schema.ENGINE_INT8_STATIC_FILE
        assert made == (seed not in outputs)  # the third encoder reuses the first one's file
        assert enc.engine.precision == "int8" and enc.engine.calibration.chips == 4  # type: ignore[attr-defined]
        if seed in outputs:
            np.testing.assert_array_equal(out, outputs[seed])
        outputs[seed] = out
    assert not np.array_equal(outputs[1], outputs[2])  # other calibration chips, other ranges
    fp32 = tiny(tiny_clip_dir, tmp_path, engine="openvino").encode_images(chips(4))  # type: ignore[attr-defined]
    assert np.all(np.sum(outputs[1] * fp32, axis=1) > 0.9) and not np.array_equal(outputs[1], fp32)


def test_a_resumed_static_int8_run_is_calibrated_as_the_whole_run_was(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """Calibration chips come from the scene's grid, not from whatever a run reads first."""
    pytest.importorskip("openvino")
    from rsgeo.errors import Cancelled

    scene = shared("L7_ETMs.tif")
    read = ReadOptions(chip_size=112, bands=(3, 2, 1))
    options = RunOptions(model=f"local-dir:{tiny_clip_dir}", engine="openvino", precision="int8", batch_size=4,
                         cache_dir=str(tmp_path))
    whole = rsgeo.embed(scene, tmp_path / "whole.gpkg", read=read, options=options)
    seen = []

    def after_two_batches() -> bool:
        seen.append(1)
        return len(seen) > 2

    with pytest.raises(Cancelled):
        rsgeo.embed(scene, tmp_path / "resumed.gpkg", read=read, options=options, cancel=after_two_batches)
    resumed = rsgeo.embed(scene, tmp_path / "resumed.gpkg", read=read, options=dataclasses.replace(options, resume=True))
    a, b = (rsgeo.open_result(p) for p in (whole, resumed))
    np.testing.assert_array_equal(a.index.tile_ids, b.index.tile_ids)
    np.testing.assert_array_equal(a.index.embeddings, b.index.embeddings)
    statics = list((tmp_path / schema.ENGINE_CACHE_FOLDER).rglob(schema.ENGINE_INT8_STATIC_FILE))
    assert len(statics) == 1  # one calibration: a resume calibrating on its own first batch would make another
    model = read_meta(whole)[schema.KEY_MODEL]
    assert model[schema.MODEL_PRECISION] == "int8"  # type: ignore[index]
    calibration = model[schema.MODEL_CALIBRATION]  # type: ignore[index]
    assert calibration["chips"] == 4 and statics[0].parent.name.endswith(calibration["sha256"][:16])  # type: ignore[index]
    assert read_meta(resumed)[schema.KEY_MODEL][schema.MODEL_CALIBRATION] == calibration  # type: ignore[index]


@pytest.mark.slow
def test_static_int8_on_a_local_cluster_equals_one_machine(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """Two workers, each starting on a block of its own, calibrate on the scene's chips as one machine does."""
    pytest.importorskip("openvino")
    pytest.importorskip("distributed")
    from tests.conftest import run_cli

    common = [str(shared("L7_ETMs.tif")), "--model", f"local-dir:{tiny_clip_dir}", "--chip-size", "48",
              "--bands", "1,2,3", "--engine", "openvino", "--precision", "int8", "--batch-size", "8",
              "--cache-dir", str(tmp_path / "cache")]
    run_cli("embed", *common, "-o", str(tmp_path / "one.gpkg"))
    proc = run_cli("embed", *common, "-o", str(tmp_path / "two.gpkg"), "--cluster", "local:2", "-v")
    assert re.search(r"blocks on 2 workers", proc.stderr), proc.stderr
    a, b = (rsgeo.open_result(tmp_path / f"{n}.gpkg") for n in ("one", "two"))
    assert len(a.index.tile_ids) == 64
    np.testing.assert_array_equal(a.index.tile_ids, b.index.tile_ids)
    np.testing.assert_array_equal(a.index.embeddings, b.index.embeddings)
    assert len(list((tmp_path / "cache").rglob(schema.ENGINE_INT8_STATIC_FILE))) == 1


# -- OpenVINO and signals ------------------------------------------------------------------

SIGINT_AFTER_TWO_TOWERS = """
import gc, os, signal, sys, time
import openvino as ov
import openvino.opset13 as ops
from rsgeo.engines.runtime import openvino_tower

path = sys.argv[1]
x = ops.parameter([1, 4], ov.Type.f32)
ov.save_model(ov.Model([ops.relu(x)], [x]), path)
first, _ = openvino_tower(path, precision="fp32", threads=1, blobs=None)
second, _ = openvino_tower(path, precision="fp32", threads=1, blobs=None)
del first; gc.collect(); del second; gc.collect()
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(10)
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_ctrl_c_after_openvino_towers_were_dropped_is_an_interrupt_not_a_crash(tmp_path: Path) -> None:
    """Two towers, each on a Core of its own, left the main thread's signal stack freed: SIGINT was a segfault.

    That killed a whole test run (a Ctrl-C test after the static int8 tests); one Core per process now.
    """
    pytest.importorskip("openvino")
    proc = subprocess.run([sys.executable, "-c", SIGINT_AFTER_TWO_TOWERS, str(tmp_path / "relu.xml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "interrupted", (proc.returncode, proc.stderr[-2000:])
