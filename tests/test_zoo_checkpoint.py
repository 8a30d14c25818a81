"""State-dict checkpoints for a built-in open_clip architecture (RemoteCLIP, GeoRSCLIP, SkyCLIP).

The files are written exactly as published: ``torch.save(model.state_dict())``
(RemoteCLIP, GeoRSCLIP) or an open_clip training checkpoint with a
``state_dict`` of ``module.``-prefixed keys inside a zip (SkyCLIP). rsgeo's
embeddings must equal those of the loading code the publishers document.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rsgeo.encoders.torch_clip import file_sha256
from rsgeo.errors import ModelError, WeightsNotAvailableError
from rsgeo.zoo.hub import url_cache_path
from rsgeo.zoo.loading import load_record
from rsgeo.zoo.registry import WeightsFile, get_model
from tests.conftest import TINY_CLIP_CFG
from tests.test_zoo_openclip import real_crops, rsgeo_embeddings

TEXTS = ["a satellite photo of an airport.", "a satellite photo of dense residential area.", "forest"]
TINY_ARCH = "rsgeo-test-tiny-vit"


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small architecture registered with open_clip like its built-in ones (name → config file)."""
    import open_clip

    folder = tmp_path_factory.mktemp("archs")
    (folder / f"{TINY_ARCH}.json").write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(folder)
    return TINY_ARCH


def save_state_dict(arch: str, path: Path, *, seed: int = 0) -> Path:
    """``torch.save(model.state_dict(), path)``: RemoteCLIP's published file format."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(100.0)))
    torch.save(model.state_dict(), path)
    return path


def readme_reference(arch: str, checkpoint: Path, crops: list[np.ndarray], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """RemoteCLIP's README: create_model_and_transforms(arch), load_state_dict(torch.load(ckpt)), preprocess."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(arch)
    tokenizer = open_clip.get_tokenizer(arch)
    message = model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    assert not message.missing_keys and not message.unexpected_keys
    model.eval()
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.fromarray(np.ascontiguousarray(c))) for c in crops]))
        txt = model.encode_text(tokenizer(texts))
    norm = torch.nn.functional.normalize
    return norm(img, dim=-1).numpy(), norm(txt, dim=-1).numpy()


def record_for(path: Path, arch: str, *, name: str = "remoteclip-vit-b-32", sha256: str | None = "file") -> object:
    """The registry record of ``name``, pointed at ``arch`` and ``path``'s checksum."""
    base = get_model(name)
    sha = file_sha256(path) if sha256 == "file" else sha256
    weights = dataclasses.replace(base.weights, filename=path.name, sha256=sha)
    return dataclasses.replace(base, architecture=arch, files=(weights,))


def test_remoteclip_state_dict_equals_the_readme_loading(tiny_arch: str, tmp_path: Path) -> None:
    ckpt = save_state_dict(tiny_arch, tmp_path / f"RemoteCLIP-{tiny_arch}.pt")
    record = record_for(ckpt, tiny_arch)
    enc = load_record(record, checkpoint=ckpt, device="cpu")
    crops = real_crops()
    img, txt = rsgeo_embeddings(enc, crops, TEXTS)
    ref_img, ref_txt = readme_reference(tiny_arch, ckpt, crops, TEXTS)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    assert enc.identity.weights_sha256 == file_sha256(ckpt)
    assert enc.languages == ("en",)
    assert abs(enc.logit_scale - 100.0) < 1e-3
    assert enc.templates("en") == ("a satellite photo of {}.",)


def test_cached_checkpoint_is_verified_against_the_published_checksum(
    tiny_arch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ckpt = save_state_dict(tiny_arch, tmp_path / "RemoteCLIP-tiny.pt")
    record = record_for(ckpt, tiny_arch)
    snap = tmp_path / "hub" / "models--chendelong--RemoteCLIP" / "snapshots" / record.revision
    snap.mkdir(parents=True)
    shutil.copy(ckpt, snap / ckpt.name)
    enc = load_record(record, cache_dir=tmp_path / "hub", device="cpu")
    assert enc.identity.weights_sha256 == record.weights.sha256
    # The same cached file against another published checksum: a clear error, not a load.
    other = record_for(ckpt, tiny_arch, sha256="0" * 64)
    with pytest.raises(ModelError, match=r"SHA-256 .* not the published 000000000000… of RemoteCLIP-tiny.pt.*delete it"):
        load_record(other, cache_dir=tmp_path / "hub", device="cpu")
    # A local --checkpoint that is not the published file: told how to load it anyway.
    with pytest.raises(ModelError, match=rf"not the published .*--model arch:{TINY_ARCH} --checkpoint"):
        load_record(other, checkpoint=ckpt, device="cpu")


def test_corrupted_or_mismatched_state_dicts_fail_clearly(tiny_arch: str, tmp_path: Path) -> None:
    import torch

    ckpt = save_state_dict(tiny_arch, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot read checkpoint .*truncated"):
        load_record(record_for(truncated, tiny_arch), checkpoint=truncated, device="cpu")

    state = torch.load(ckpt)
    state.pop("text_projection")
    state["visual.proj_extra"] = torch.zeros(3)
    mismatched = tmp_path / "mismatched.pt"
    torch.save(state, mismatched)
    with pytest.raises(ModelError) as err:
        load_record(record_for(mismatched, tiny_arch), checkpoint=mismatched, device="cpu")
    assert "1 missing keys" in str(err.value) and "text_projection" in str(err.value)
    assert "1 unexpected" in str(err.value) and "\n" not in str(err.value)

    # Right keys, wrong shapes: another width of the same architecture family.
    wide = dict(TINY_CLIP_CFG, embed_dim=32)
    import open_clip

    other = open_clip.CLIP(**wide)
    shaped = tmp_path / "shaped.pt"
    torch.save(other.state_dict(), shaped)
    with pytest.raises(ModelError, match=r"does not match the architecture: \d+ tensors differ in shape"):
        load_record(record_for(shaped, tiny_arch), checkpoint=shaped, device="cpu")


def _training_checkpoint_zip(arch: str, tmp_path: Path) -> tuple[Path, Path]:
    """SkyCLIP's format: a zip holding an open_clip training checkpoint (``module.`` keys, optimizer)."""
    import torch

    plain = save_state_dict(arch, tmp_path / "plain.pt", seed=3)
    state = torch.load(plain)
    ckpt = {
        "epoch": 20,
        "name": "SkyCLIP_ViT_B32_top50pct",
        "state_dict": {f"module.{k}": v for k, v in state.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-9, "weight_decay": 1.0, "params": [0, 1]}]},
    }
    inner = tmp_path / "epoch_20.pt"
    torch.save(ckpt, inner)
    archive = tmp_path / "SkyCLIP_ViT_B32_top50pct.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(inner, "SkyCLIP_ViT_B32_top50pct/epoch_20.pt")
    return archive, plain


@pytest.fixture()
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over a folder: the download path without the internet."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()


def test_skyclip_zip_is_downloaded_extracted_and_loaded(
    tiny_arch: str, tmp_path: Path, http_folder: tuple[str, Path]
) -> None:
    url, www = http_folder
    archive, plain = _training_checkpoint_zip(tiny_arch, tmp_path)
    shutil.copy(archive, www / archive.name)
    base = get_model("skyclip-vit-b-32")
    weights = dataclasses.replace(base.weights, url=f"{url}/{archive.name}")
    record = dataclasses.replace(base, architecture=tiny_arch, files=(weights,))
    cache = tmp_path / "cache"
    enc = load_record(record, cache_dir=cache, device="cpu")
    member = url_cache_path(weights, cache)
    assert member.is_file() and member.name == "epoch_20.pt"
    assert not list(member.parent.glob("*.part")) and not list(member.parent.glob("*.zip"))
    crops = real_crops()[:2]
    img, txt = rsgeo_embeddings(enc, crops, TEXTS)
    ref_img, ref_txt = readme_reference(tiny_arch, plain, crops, TEXTS)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    assert enc.templates("en") == ("a satellite photo of {}.", "a satellite image of {}")
    # Second use: from the cache, the server is not asked again.
    (www / archive.name).unlink()
    load_record(record, cache_dir=cache, device="cpu")
    # Not cached and the server gone: the one-line instruction.
    gone = dataclasses.replace(record, files=(dataclasses.replace(weights, url="http://127.0.0.1:9/x.zip"),))
    with pytest.raises(WeightsNotAvailableError, match=r"unzip it and pass --model skyclip-vit-b-32 --checkpoint"):
        load_record(gone, cache_dir=tmp_path / "other", device="cpu")


@pytest.mark.slow
def test_real_rn50_architecture_with_a_remoteclip_state_dict(tmp_path: Path) -> None:
    """The real RemoteCLIP-RN50 record (architecture, input, templates) with a random full-size state dict."""
    record = get_model("remoteclip-rn50")
    ckpt = save_state_dict(record.architecture, tmp_path / record.weights.filename)
    local = dataclasses.replace(record, files=(WeightsFile(ckpt.name, repo=record.repo, revision=record.revision, sha256=file_sha256(ckpt)),))
    enc = load_record(local, checkpoint=ckpt, device="cpu")
    crops, texts = real_crops()[2:3], TEXTS[:1]  # one of each: the full-size towers are slow on CPU
    img, txt = rsgeo_embeddings(enc, crops, texts)
    ref_img, ref_txt = readme_reference(record.architecture, ckpt, crops, texts)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    assert enc.image_spec == record.image_spec and enc.embedding_dim == 1024
    # The random file is not the published one: the real record refuses it.
    with pytest.raises(ModelError, match="not the published RemoteCLIP-RN50.pt"):
        load_record(record, checkpoint=ckpt, device="cpu")
