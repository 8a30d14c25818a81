"""rsgeo feeds the model bit for bit what open_clip's ``preprocess`` would (issue 6).

The reference is open_clip's own eval transform on a PIL image of the chip
(``Resize`` → ``CenterCrop`` → ``ToTensor`` → ``Normalize``). rsgeo splits it:
:func:`rsgeo.preprocess.fit_chip` does the geometry on ``uint8`` arrays (in the
reader threads), :meth:`OpenClipEncoder.model_input` the normalisation on the
model's device. Their composition must equal the reference exactly, for
square, non-square, up- and downsampled chips, in both memory layouts.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image

from rsgeo.encoders.base import ImageSpec
from rsgeo.encoders.torch_clip import normalise_chips
from rsgeo.preprocess import fit_chip, resized_shape
from rsgeo.reader import empty_chips
from tests.conftest import OPENAI_MEAN, OPENAI_STD, shared

SHAPES = [
    (224, 224),  # the model input: no resize, no crop
    (300, 260),  # downsampled, non-square: resize then crop the long side
    (260, 300),
    (100, 50),  # upsampled
    (50, 100),
    (224, 500),  # short side already right: crop only
    (500, 224),
    (223, 225),  # off by one either way
    (1000, 700),
    (7, 9),  # tiny
]


def reference_transform(resize_mode: str, interpolation: str):  # type: ignore[no-untyped-def]
    import open_clip

    return open_clip.image_transform(
        224, is_train=False, mean=tuple(OPENAI_MEAN), std=tuple(OPENAI_STD),
        resize_mode=resize_mode, interpolation=interpolation,
    )


def model_input(chips: np.ndarray) -> torch.Tensor:
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return normalise_chips(chips, mean, std, "cpu")


@functools.lru_cache(maxsize=1)
def aerial() -> np.ndarray:
    import rasterio

    with rasterio.open(shared("OSBS_029.tif")) as ds:
        return np.transpose(ds.read([1, 2, 3]), (1, 2, 0))


def real_chip(height: int, width: int, seed: int) -> np.ndarray:
    """A crop of a real aerial photo (tiled when larger than it), so resampling sees real texture."""
    img = aerial()
    reps = (height // img.shape[0] + 2, width // img.shape[1] + 2, 1)
    big = np.tile(img, reps)
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, img.shape[0]), rng.integers(0, img.shape[1])
    return np.ascontiguousarray(big[y : y + height, x : x + width])


@pytest.mark.parametrize("resize_mode,interpolation", [("shortest", "bicubic"), ("shortest", "bilinear"), ("squash", "bicubic")])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_model_input_is_bit_identical_to_open_clip_preprocess(shape: tuple[int, int], resize_mode: str, interpolation: str) -> None:
    spec = ImageSpec(224, tuple(OPENAI_MEAN), tuple(OPENAI_STD), interpolation=interpolation, resize_mode=resize_mode)  # type: ignore[arg-type]
    preprocess = reference_transform(resize_mode, interpolation)
    chips = [real_chip(*shape, seed) for seed in range(3)]
    chips.append(np.random.default_rng(9).integers(0, 256, (*shape, 3), np.uint8))  # noise: every value and edge
    reference = torch.stack([preprocess(Image.fromarray(c)) for c in chips])
    fitted = np.stack([fit_chip(c, spec) for c in chips])
    assert fitted.dtype == np.uint8 and fitted.shape == (len(chips), 224, 224, 3)
    got = model_input(fitted)
    assert got.dtype == torch.float32 and got.is_contiguous()
    assert torch.equal(got, reference)
    # The reader's channel-first batches give the very same tensor.
    channels_first = empty_chips(len(chips), 224, channels_first=True)
    channels_first[...] = fitted
    assert torch.equal(model_input(channels_first), reference)


def test_chips_of_the_model_size_pass_untouched() -> None:
    spec = ImageSpec(224, tuple(OPENAI_MEAN), tuple(OPENAI_STD))  # type: ignore[arg-type]
    chip = real_chip(224, 224, 0)
    assert fit_chip(chip, spec) is chip


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_resized_shape_is_torchvisions_rule(shape: tuple[int, int]) -> None:
    from torchvision.transforms.functional import _compute_resized_output_size

    spec = ImageSpec(224, tuple(OPENAI_MEAN), tuple(OPENAI_STD))  # type: ignore[arg-type]
    assert list(resized_shape(*shape, spec)) == _compute_resized_output_size(list(shape), [224], None)


def test_encoder_feeds_the_model_the_reference_tensor(tiny_clip_dir) -> None:  # type: ignore[no-untyped-def]
    """Through a real encoder: ``model_input`` and ``encode_images`` agree with open_clip's path."""
    import open_clip

    from rsgeo.encoders.openclip import OpenClipEncoder

    encoder = OpenClipEncoder.from_name(f"local-dir:{tiny_clip_dir}", device="cpu")
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_clip_dir}")
    chips = [real_chip(300, 260, s) for s in range(4)]
    reference = torch.stack([preprocess(Image.fromarray(c)) for c in chips])
    fitted = np.stack([fit_chip(c, encoder.image_spec) for c in chips])
    assert torch.equal(encoder.model_input(fitted), reference)
    with torch.inference_mode():
        ref = encoder.model.encode_image(reference)
        ref = (ref / ref.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_array_equal(encoder.encode_images(fitted), ref)
