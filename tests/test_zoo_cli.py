"""``rsgeo models`` and the offline one-line instruction, through the real command (issue 3, points 2 and 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rsgeo.zoo.registry import get_model, model_names
from tests.conftest import run_cli


def offline_env(tmp_path: Path) -> dict[str, str]:
    """An empty Hugging Face home, offline, and no rsgeo cache override."""
    home = tmp_path / "hf-home"
    home.mkdir(exist_ok=True)
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "RSGEO_CACHE_DIR": ""}


def test_models_lists_every_model_with_languages_and_cache_state(tmp_path: Path) -> None:
    env = offline_env(tmp_path)
    proc = run_cli("models", env=env)
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "CACHED", "LANGUAGES"]
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith("cache:")}
    assert set(model_names()) <= set(rows)
    assert "(default)" in rows["rs-m-clip"] and "en pt es fr de nl it zh ko ru" in rows["rs-m-clip"]
    assert all(" no " in rows[name] for name in model_names())
    assert f"cache: {tmp_path / 'hf-home' / 'hub'}" in proc.stdout

    # Put RemoteCLIP-RN50 in the cache (any bytes: listing never reads or hashes files).
    record = get_model("remoteclip-rn50")
    snap = tmp_path / "hf-home" / "hub" / "models--chendelong--RemoteCLIP" / "snapshots" / record.revision
    snap.mkdir(parents=True)
    (snap / record.weights.filename).write_bytes(b"weights")
    rs = get_model("rs-m-clip")
    rs_snap = tmp_path / "hf-home" / "hub" / "models--joaodaniel--RS-M-CLIP" / "snapshots" / rs.revision
    rs_snap.mkdir(parents=True)
    (rs_snap / "open_clip_config.json").write_text("{}")
    data = json.loads(run_cli("models", "--json", env=env).stdout)
    state = {row["model"]: row["cached"] for row in data}
    assert state["remoteclip-rn50"] == "yes" and state["remoteclip-vit-b-32"] == "no"
    assert state["rs-m-clip"] == f"partly (1/{len(rs.files)} files)"
    rn50 = next(row for row in data if row["model"] == "remoteclip-rn50")
    assert rn50["files"][0]["sha256"] == record.weights.sha256 and rn50["revision"] == record.revision


def test_models_details_and_class_sets(tmp_path: Path) -> None:
    proc = run_cli("models", "--details", env=offline_env(tmp_path))
    assert "chendelong/RemoteCLIP" in proc.stdout and "11657d33a87fc197" in proc.stdout
    assert "none published" in proc.stdout and "pip install 'rsgeo[transformers]'" in proc.stdout
    proc = run_cli("models", "--class-sets")
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert {k: v[1] for k, v in rows.items()} == {
        "aid": "30", "esa-worldcover": "11", "eurosat": "10", "nwpu-resisc45": "45", "uc-merced": "21"
    }


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("rs-m-clip", ["open_clip_model.safetensors", "joaodaniel/RS-M-CLIP/tree/", "--model rs-m-clip --checkpoint DIR"]),
        ("remoteclip-vit-l-14", ["RemoteCLIP-ViT-L-14.pt", "https://huggingface.co/chendelong/RemoteCLIP/resolve/", "--checkpoint PATH"]),
        ("clip-rsicd-v2", ["pytorch_model.bin", "flax-community/clip-rsicd-v2", "--model hf-clip:DIR"]),
    ],
)
def test_offline_and_not_cached_is_one_line_and_no_traceback(tmp_path: Path, model: str, expected: list[str]) -> None:
    data = tmp_path / "data"
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        shutil.copy(Path(__file__), data / name / "x.png")  # never read: the model fails first
    proc = run_cli("eval", str(data), "--model", model, check=False, env=offline_env(tmp_path), timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rsgeo: error: ") and "HF_HUB_OFFLINE" in lines[0]
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_unknown_model_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("eval", str(tmp_path), "--model", "remoteclip", check=False, env=offline_env(tmp_path))
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "unknown model 'remoteclip'" in proc.stderr and "remoteclip-vit-b-32" in proc.stderr
