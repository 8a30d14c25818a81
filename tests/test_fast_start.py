"""Models loaded from weights are built without random initial draws (issue 16, fast start).

The draws are skipped only where every parameter is then loaded strictly, so
the model must be the very model a normal build plus ``load_state_dict`` gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rsgeo.zoo.loading import load_encoder
from rsgeo.zoo.openclip_build import without_random_init
from tests.conftest import TINY_CLIP_CFG


def test_a_module_built_without_random_init_draws_nothing_and_init_is_restored() -> None:
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    with without_random_init():
        layer = torch.nn.Linear(8, 8)
    assert torch.equal(torch.random.get_rng_state(), before)  # no random number was drawn
    assert layer.weight.shape == (8, 8)
    torch.nn.Linear(8, 8)  # a normal build draws its weights
    assert not torch.equal(torch.random.get_rng_state(), before)
    assert torch.nn.init.normal_(torch.zeros(1000)).std() > 0.5  # the real init is back


def test_a_folder_model_equals_a_normal_build_with_its_weights(tiny_clip_dir: Path) -> None:
    import open_clip
    from safetensors.torch import load_file

    encoder = load_encoder(f"local-dir:{tiny_clip_dir}", device="cpu", engine="torch")
    reference = open_clip.CLIP(**TINY_CLIP_CFG)
    reference.load_state_dict(load_file(str(tiny_clip_dir / "open_clip_model.safetensors")))
    ours = encoder.model.state_dict()  # type: ignore[attr-defined]
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours[name], tensor), name
    chips = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    with torch.no_grad():
        x = encoder.model_input(chips)  # type: ignore[attr-defined]
        expected = torch.nn.functional.normalize(reference.eval().encode_image(x), dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_images(chips), expected, atol=1e-6)


def _tiny_state(tmp_path: Path) -> dict[str, torch.Tensor]:
    import open_clip

    torch.manual_seed(1)
    return {k: v.clone() for k, v in open_clip.CLIP(**TINY_CLIP_CFG).state_dict().items()}


def test_weights_become_the_parameters_without_a_copy(tmp_path: Path) -> None:
    """Same dtype and shape: the parameters are the file's mapped tensors (the weights are never held twice)."""
    import open_clip
    from safetensors.torch import save_file

    from rsgeo.encoders.openclip import load_checkpoint_strict

    state = _tiny_state(tmp_path)
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")  # a training checkpoint
    for name in ("w.safetensors", "w.pt"):
        with without_random_init():
            model = open_clip.CLIP(**TINY_CLIP_CFG)
        before = {k: v.data_ptr() for k, v in model.state_dict().items()}
        load_checkpoint_strict(model, tmp_path / name)
        loaded = model.state_dict()
        for key, tensor in state.items():
            assert torch.equal(loaded[key], tensor), (name, key)
            assert loaded[key].data_ptr() != before[key], (name, key)  # replaced, not copied into
        assert isinstance(model.visual.conv1.weight, torch.nn.Parameter)


def test_weights_of_another_dtype_are_copied_into_the_model_dtype(tmp_path: Path) -> None:
    import open_clip

    from rsgeo.encoders.openclip import load_checkpoint_strict

    state = _tiny_state(tmp_path)
    torch.save({k: v.half() for k, v in state.items()}, tmp_path / "half.pt")
    with without_random_init():
        model = open_clip.CLIP(**TINY_CLIP_CFG)
    load_checkpoint_strict(model, tmp_path / "half.pt")
    for key, tensor in model.state_dict().items():
        assert tensor.dtype == state[key].dtype, key  # the model stays fp32
        assert torch.equal(tensor, state[key].half().to(tensor.dtype)), key
