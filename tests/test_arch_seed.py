"""Randomly initialised ``arch:`` models are the same in every process."""

from __future__ import annotations

import numpy as np
import torch

from rsgeo.zoo import load_encoder


def test_arch_models_are_seeded_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(1)
    a = load_encoder("arch:ViT-B-32", device="cpu")
    after_a = torch.rand(1)
    torch.manual_seed(2)
    b = load_encoder("arch:ViT-B-32", device="cpu")
    np.testing.assert_array_equal(a.encode_texts(["a harbour"]), b.encode_texts(["a harbour"]))
    torch.manual_seed(1)
    assert torch.rand(1) == after_a  # building the model did not consume the caller's random numbers
