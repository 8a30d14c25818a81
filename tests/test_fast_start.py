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
