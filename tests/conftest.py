"""Shared fixtures: real scenes from ../shared/data and small real models."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # Started in the background by a shell without job control (``cmd &`` in a script): the rsgeo
    # processes the tests start would inherit the ignored SIGINT, and the tests that send them one
    # (a Ctrl-C) would see it ignored. Python's own handler here makes theirs the default again.
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RSGEO_SHARED_DATA", ROOT.parent / "shared" / "data"))
TEST_DATA = ROOT / "tests" / "data"

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

#: A small but real open_clip CLIP architecture (ViT image tower, transformer text tower).
TINY_CLIP_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(autouse=True)
def messages_name_options_as_the_cli_does() -> Iterator[None]:
    """Library messages name options as flags (``--chip-size``) in these tests, as the CLI shows them.

    A library error names an option the way the front end that shows it does
    (rsgeo.errors.option_style); most tests here read the CLI's wording, and
    tests/test_option_names.py checks the Python and QGIS wordings.
    """
    from rsgeo.errors import option_style

    with option_style("cli"):
        yield


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the tests read real scenes from ../shared/data")
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An open_clip ``local-dir`` (config + safetensors weights), random weights, seed 0."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CFG)
    # A logit scale like the published models' (100) so softmax scores are not flat.
    with torch.no_grad():
        model.logit_scale.fill_(torch.log(torch.tensor(100.0)))
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD}})
    )
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def run_cli(*args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real ``rsgeo`` command in a subprocess.

    A run still going after ``timeout`` gets SIGABRT, on which Python's faulthandler
    prints every thread's stack: the failure then says where it hung.
    """
    command = [sys.executable, "-m", "rsgeo", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(f"rsgeo {' '.join(args)} still ran after {timeout:.0f} s; it printed:\n{err}") from None
    done = subprocess.CompletedProcess(command, proc.returncode, out, err)
    if check and done.returncode != 0:
        raise AssertionError(f"rsgeo {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def journal_rows(path: Path) -> int:
    """Chips stored so far in a run journal (0 while it does not exist or is locked)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)) as db:
            return int(db.execute("SELECT count(*) FROM chips").fetchone()[0])
    except sqlite3.Error:
        return 0
