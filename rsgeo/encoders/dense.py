"""Dense patch embeddings of an open_clip ViT, training-free (SegEarth-OV's last block).

CLIP's patch tokens carry little local meaning: the last transformer block
mixes every token towards the global picture (ClearCLIP, Lan et al., ECCV
2024, §3, traces the noise to the last block's residual path and FFN). The
training-free remedy used here is the one SegEarth-OV (Li et al., 2024, §3)
applies on top of ClearCLIP; with ``X`` the tokens entering the last block
(``[CLS]`` first, then the ``g × g`` patches), ``d_h`` the head width and
``W_q, W_v, W_o`` that block's own projections:

1. ``Y = LN_1(X)``; per head ``Q = Y W_q + b_q``, ``V = Y W_v + b_v``;
2. self-self attention instead of query-key: ``A = softmax(Q Qᵀ / √d_h)``;
3. ``O = concat_heads(A V) W_o + b_o`` — **no residual** (``X`` is not added
   back) and **no FFN** (ClearCLIP's three changes);
4. the model's own final norm and projection on *every* token:
   ``Z = LN_post(O) P``;
5. global bias alleviation (SegEarth-OV): ``Z_patch ← Z_patch − λ Z_cls``,
   ``λ = 0.3`` (:data:`BIAS_LAMBDA`), then each patch vector is L2-normalised.

SegEarth-OV's third part, the SimFeatUp upsampler, is a trained module
(its weights are not part of any CLIP checkpoint) and is not used: a chip
gives ``g × g`` cells (7 × 7 for ViT-B/32 at 224 px), blended over
overlapping chips by :mod:`rsgeo.dense_maps`.

The first ``L − 1`` blocks run once and feed both the plain last block (the
chip's usual pooled embedding, the same numbers :meth:`encode_images` gives)
and the modified one, so a dense run costs one attention without FFN more
than a plain one. :func:`dense_encoder` refuses, in one line, every model it
cannot serve: ResNet towers, transformers CLIP, towers with attentional
pooling or custom attention blocks, the test encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rsgeo.encoders.base import Encoder
from rsgeo.encoders.openclip import OpenClipEncoder
from rsgeo.encoders.torch_clip import unit_rows
from rsgeo.errors import ModelError, opt

#: SegEarth-OV's weight of the ``[CLS]`` token subtracted from every patch token.
BIAS_LAMBDA = 0.3

#: The method's name, as recorded in a result's metadata.
METHOD = "segearth-ov (clearclip last block, q-q attention, no residual, no FFN; [CLS] bias 0.3; no SimFeatUp)"


@dataclass(frozen=True)
class DenseBatch:
    """A batch's pooled embeddings ``(N, D)`` and unit patch embeddings ``(N, g, g, D)``, ``float32``."""

    embeddings: np.ndarray
    patches: np.ndarray


class DenseViT:
    """The dense capability of an open_clip ViT encoder (see the module docstring)."""

    def __init__(self, encoder: OpenClipEncoder, bias_lambda: float = BIAS_LAMBDA) -> None:
        self.encoder = encoder
        self.bias_lambda = bias_lambda
        visual = encoder.model.visual
        self.grid_size = int(visual.grid_size[0])
        self.embedding_dim = encoder.embedding_dim

    def encode_dense(self, chips: np.ndarray) -> DenseBatch:
        """Pooled and patch embeddings of a batch of ``uint8`` chips (as :meth:`Encoder.encode_images` takes)."""
        import torch

        enc = self.encoder
        with torch.inference_mode():
            x = enc.model_input(chips)
            with enc._autocast():
                pooled, tokens = self._forward(x)
            embeddings = unit_rows(pooled)
            tokens = tokens.float()
            patches = tokens[:, 1:] - self.bias_lambda * tokens[:, :1]
            n, g = len(chips), self.grid_size
            flat = unit_rows(patches.reshape(n * g * g, -1))
        return DenseBatch(embeddings, flat.reshape(n, g, g, -1))

    def _forward(self, x: Any) -> tuple[Any, Any]:
        visual = self.encoder.model.visual
        transformer = visual.transformer
        # The tower's embedding step, exactly as VisionTransformer.forward does it.
        x = visual.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = visual.ln_pre(visual.patch_dropout(cls_cat(cls, x) + visual.positional_embedding.to(x.dtype)))
        if not transformer.batch_first:
            x = x.transpose(0, 1).contiguous()
        blocks = transformer.resblocks
        for block in blocks[:-1]:
            x = block(x)
        last = blocks[-1]
        plain = last(x)
        dense = _self_self_attention(last, x, batch_first=transformer.batch_first)
        if not transformer.batch_first:
            plain, dense = plain.transpose(0, 1), dense.transpose(0, 1)
        pooled, _ = visual._pool(plain)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        tokens = visual.ln_post(dense)
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return pooled, tokens


def cls_cat(cls: Any, x: Any) -> Any:
    import torch

    return torch.cat([cls, x], dim=1)


def _self_self_attention(block: Any, x: Any, *, batch_first: bool) -> Any:
    """Steps 1–3 of the module docstring: ``concat(softmax(QQᵀ/√d) V) W_o + b_o``, no residual, no FFN."""
    import torch.nn.functional as F

    if not batch_first:
        x = x.transpose(0, 1)
    attn = block.attn
    y = block.ln_1(x)
    width = y.shape[-1]
    w, b = attn.in_proj_weight, attn.in_proj_bias  # rows: W_q, W_k, W_v (K is not needed)
    q = F.linear(y, w[:width], None if b is None else b[:width])
    v = F.linear(y, w[2 * width :], None if b is None else b[2 * width :])
    n, t, _ = q.shape
    heads = attn.num_heads
    q = q.reshape(n, t, heads, width // heads).transpose(1, 2)
    v = v.reshape(n, t, heads, width // heads).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, q, v)  # softmax(q qᵀ / √d_h) v
    o = o.transpose(1, 2).reshape(n, t, width)
    out = block.ls_1(attn.out_proj(o))
    return out if batch_first else out.transpose(0, 1)


def dense_encoder(encoder: Encoder) -> DenseViT:
    """The dense capability of ``encoder``, or one :class:`ModelError` line saying why it has none.

    Called before any chip is read, so a refused run writes nothing.
    """
    name = encoder.identity.model_id
    hint = f"{opt('dense')} needs an open_clip ViT (ViT-B-32, RemoteCLIP, RS-M-CLIP, ...)"
    if not isinstance(encoder, OpenClipEncoder):
        raise ModelError(f"{name} cannot make dense maps: {hint}; it is a {type(encoder).__name__}")
    why = _unsupported_tower(encoder.model.visual)
    if why is not None:
        raise ModelError(f"{name} cannot make dense maps: {hint}; its image tower {why}")
    return DenseViT(encoder)


def _unsupported_tower(visual: Any) -> str | None:
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
    from torch import nn

    if not isinstance(visual, VisionTransformer):
        return f"is a {type(visual).__name__}, not a vision transformer"
    if visual.attn_pool is not None:
        return "pools with attention (CoCa-style), so its patch tokens are not projected into the text space"
    if visual.pool_type != "tok":
        return f"pools by {visual.pool_type!r}, not by its [CLS] token"
    last = visual.transformer.resblocks[-1]
    if type(last) is not ResidualAttentionBlock or not isinstance(last.attn, nn.MultiheadAttention):
        return f"uses {type(last).__name__} blocks (custom attention)"
    if last.attn.in_proj_weight is None:
        return "has separate q/k/v projections"
    return None
