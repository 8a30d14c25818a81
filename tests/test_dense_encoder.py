"""The dense capability (rsgeo/encoders/dense.py) against the method's equations.

The reference below is written from the papers' equations (ClearCLIP, Lan et
al. 2024, §3.3: self-self attention, no residual, no FFN in the last block;
SegEarth-OV, Li et al. 2024, §3.3: subtract λ·[CLS] from the patch tokens),
in float64 NumPy on the weights of a randomly initialised open_clip ViT-B-32:
no torch attention call, no rsgeo code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rsgeo.encoders.dense import BIAS_LAMBDA, dense_encoder
from rsgeo.errors import ModelError


@pytest.fixture(scope="module")
def vit_b32() -> Any:
    import torch

    from rsgeo.encoders.openclip import OpenClipEncoder

    torch.manual_seed(13)
    return OpenClipEncoder.from_name("ViT-B-32", device="cpu")


def _layer_norm(x: np.ndarray, ln: Any) -> np.ndarray:
    w = ln.weight.detach().double().numpy()
    b = ln.bias.detach().double().numpy()
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * w + b


def _reference_patches(model: Any, x_last: np.ndarray, *, qq: bool = True) -> np.ndarray:
    """Unit patch embeddings ``(g*g, D)`` of one chip from the tokens ``X`` entering the last block."""
    visual = model.visual
    block = visual.transformer.resblocks[-1]
    width = x_last.shape[-1]
    heads = block.attn.num_heads
    d_h = width // heads
    w_in = block.attn.in_proj_weight.detach().double().numpy()
    b_in = block.attn.in_proj_bias.detach().double().numpy()
    w_q, w_k, w_v = w_in[:width], w_in[width : 2 * width], w_in[2 * width :]
    b_q, b_k, b_v = b_in[:width], b_in[width : 2 * width], b_in[2 * width :]
    w_o = block.attn.out_proj.weight.detach().double().numpy()
    b_o = block.attn.out_proj.bias.detach().double().numpy()

    y = _layer_norm(x_last, block.ln_1)  # Y = LN_1(X)
    q, k, v = y @ w_q.T + b_q, y @ w_k.T + b_k, y @ w_v.T + b_v
    out = np.zeros_like(y)
    for h in range(heads):
        s = slice(h * d_h, (h + 1) * d_h)
        logits = (q[:, s] @ (q[:, s] if qq else k[:, s]).T) / np.sqrt(d_h)  # Q Qᵀ / √d_h
        logits -= logits.max(-1, keepdims=True)
        a = np.exp(logits)
        a /= a.sum(-1, keepdims=True)  # softmax over the keys
        out[:, s] = a @ v[:, s]
    o = out @ w_o.T + b_o  # concat_heads(A V) W_o + b_o: no residual, no FFN
    z = _layer_norm(o, visual.ln_post) @ visual.proj.detach().double().numpy()  # Z = LN_post(O) P
    patches = z[1:] - BIAS_LAMBDA * z[:1]  # Z_patch − λ Z_cls
    return patches / np.linalg.norm(patches, axis=-1, keepdims=True)


def _tokens_entering_last_block(encoder: Any, chips: np.ndarray) -> np.ndarray:
    """``X`` of the last block for each chip, captured while the unmodified model runs."""
    import torch

    seen: list[np.ndarray] = []
    block = encoder.model.visual.transformer.resblocks[-1]
    handle = block.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().double().numpy()))
    try:
        with torch.inference_mode():
            encoder.model.encode_image(encoder.model_input(chips))
    finally:
        handle.remove()
    x = seen[0]
    return x if encoder.model.visual.transformer.batch_first else x.transpose(1, 0, 2)


def test_dense_patches_equal_the_papers_equations_on_a_random_vit_b32(vit_b32: Any) -> None:
    chips = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    dense = dense_encoder(vit_b32)
    out = dense.encode_dense(chips)
    assert dense.grid_size == 7
    assert out.patches.shape == (2, 7, 7, 512)
    x_last = _tokens_entering_last_block(vit_b32, chips)
    for i in range(2):
        expected = _reference_patches(vit_b32.model, x_last[i]).reshape(7, 7, 512)  # row-major patches
        np.testing.assert_allclose(out.patches[i], expected, atol=1e-5, rtol=0)
    # The modification matters: plain query-key attention gives other patch vectors.
    qk = _reference_patches(vit_b32.model, x_last[0], qq=False).reshape(7, 7, 512)
    assert np.abs(out.patches[0] - qk).max() > 1e-2


def test_dense_run_keeps_the_plain_chip_embedding_bit_for_bit(vit_b32: Any) -> None:
    chips = np.random.default_rng(2).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    out = dense_encoder(vit_b32).encode_dense(chips)
    np.testing.assert_array_equal(out.embeddings, vit_b32.encode_images(chips))
    np.testing.assert_allclose(np.linalg.norm(out.patches, axis=-1), 1.0, atol=1e-5)


def test_rn50_is_refused_in_one_line() -> None:
    import torch

    from rsgeo.encoders.openclip import OpenClipEncoder

    torch.manual_seed(0)
    rn50 = OpenClipEncoder.from_name("RN50", device="cpu")
    with pytest.raises(ModelError) as caught:
        dense_encoder(rn50)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("RN50 cannot make dense maps: --dense needs an open_clip ViT")
    assert "ModifiedResNet" in message


def test_the_test_encoder_is_refused_in_one_line() -> None:
    from rsgeo.encoders.testing import HashEncoder

    with pytest.raises(ModelError) as caught:
        dense_encoder(HashEncoder())
    assert "\n" not in str(caught.value)
    assert "cannot make dense maps" in str(caught.value)
