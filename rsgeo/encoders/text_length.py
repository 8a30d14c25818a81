"""Run open_clip text towers on the texts' real token length.

open_clip tokenizers pad every text to the model's context length (77
tokens), and ``encode_text`` runs the text transformer over all of them. A
query such as "solar farm" is 4 tokens: the other 73 positions are padding,
and on a CPU they are most of the cost of a new query over stored embeddings.

For two kinds of tower the padding cannot change the answer, so the columns
after the longest text of a batch can be dropped:

* **causal towers** (OpenAI CLIP and the open_clip ``TextTransformer``): a
  position only attends to earlier ones, and the embedding is read at the
  end-of-text token (``argmax``/``eos`` pooling) or the first token, so
  nothing after the end-of-text token reaches it;
* **Hugging Face towers** (XLM-R in RS-M-CLIP): the model masks padding out
  of attention and the pooler (mean over real tokens, or the CLS token) never
  reads it.

Anything else (``last``-token pooling, bidirectional towers, CoCa's appended
class token, an unknown module) runs the full padded length, unchanged.
:class:`TextLengthTrimmer` checks the shortcut once against the model's own
``encode_text`` when it is built and turns itself off if the two disagree,
so a change in open_clip internals costs speed, never correctness.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

#: Pooling types that read only positions up to the end-of-text token.
CAUSAL_SAFE_POOLING = ("argmax", "eos", "first")
#: Hugging Face poolers (open_clip ``hf_model``) that ignore padded positions.
HF_SAFE_POOLERS = ("MeanPooler", "ClsPooler", "ClsLastHiddenStatePooler")
#: Largest |difference| allowed between trimmed and full unit embeddings.
TOLERANCE = 1e-4


def _causal_tower(module: Any, pool_attr: str, eos_attr: str) -> dict[str, Any] | None:
    """The parts of a causal text transformer, or ``None`` if ``module`` is not one."""
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if not all(hasattr(module, name) for name in needed):
        return None
    if module.attn_mask is None or getattr(module, "cls_emb", None) is not None:
        return None
    if getattr(module, "use_pad_mask", False):
        return None
    pool = getattr(module, pool_attr, "argmax")
    if pool not in CAUSAL_SAFE_POOLING:
        return None
    return {"tower": module, "pool": pool, "eos_id": getattr(module, eos_attr, None)}


def _hf_tower(module: Any) -> Any | None:
    if not all(hasattr(module, name) for name in ("transformer", "pooler", "proj", "config")):
        return None
    if type(module.pooler).__name__ not in HF_SAFE_POOLERS:
        return None
    return module


class TextLengthTrimmer:
    """Encode token batches of an open_clip model on their real length.

    ``trimmer(tokens)`` returns the same (unnormalised) features as
    ``model.encode_text(tokens)``; ``trimmer.kind`` says which shortcut is in
    use (``"causal"``, ``"hf"`` or ``None`` for the model's own path).
    """

    def __init__(self, model: Any, *, pad_id: int | None = None, probe: Any | None = None) -> None:
        self.model = model
        self.kind: str | None = None
        self._causal: dict[str, Any] | None = None
        self._hf: Any | None = None
        text = getattr(model, "text", None)
        if text is not None:  # CustomTextCLIP: the tower is a submodule
            self._causal = _causal_tower(text, "pool_type", "eos_id")
            self._hf = None if self._causal else _hf_tower(text)
        else:  # CLIP: the tower's parts are attributes of the model itself
            self._causal = _causal_tower(model, "text_pool_type", "text_eos_id")
        if self._causal is not None:
            self.kind = "causal"
            self.pad_id = 0 if pad_id is None else pad_id
        elif self._hf is not None:
            self.kind = "hf"
            self.pad_id = int(self._hf.config.pad_token_id) if pad_id is None else pad_id
        else:
            self.pad_id = 0 if pad_id is None else pad_id
        if self.kind is not None and probe is not None:
            self._verify(probe)

    def _verify(self, tokens: Any) -> None:
        """Turn the shortcut off unless it gives the model's own embeddings.

        Checked at fp32 even inside a bf16/fp16 autocast: whether trimming the padding changes
        the embeddings is a property of the tower, and reduced precision would add its own
        rounding (~1e-3 in bf16, the two paths' matrices having other shapes) to the gap.
        """
        import torch

        with torch.inference_mode(), torch.autocast(device_type=tokens.device.type, enabled=False):
            full = self.model.encode_text(tokens).float()
            short = self(tokens).float()
        full = full / full.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        short = short / short.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        gap = float((full - short).abs().max()) if full.shape == short.shape else float("inf")
        if not gap <= TOLERANCE:
            logger.warning(
                "text tower shortcut disagrees with encode_text (max |diff| %.2g); using the full length", gap
            )
            self.kind, self._causal, self._hf = None, None, None
        else:
            logger.debug("text tower runs on the real token length (%s; check |diff| %.2g)", self.kind, gap)

    def length(self, tokens: Any) -> int:
        """Columns up to and including the last non-padding token of any row."""
        import torch

        real = (tokens != self.pad_id).any(dim=0)
        if not bool(real.any()):
            return int(tokens.shape[1])
        return int(torch.nonzero(real).max()) + 1

    def __call__(self, tokens: Any) -> Any:
        if self.kind is None:
            return self.model.encode_text(tokens)
        tokens = tokens[:, : self.length(tokens)]
        if self.kind == "hf":
            return self.model.encode_text(tokens)
        return self._encode_causal(tokens)

    def _encode_causal(self, text: Any) -> Any:
        from open_clip.transformer import text_global_pool
        from torch import nn

        parts = self._causal
        assert parts is not None
        tower = parts["tower"]
        n = text.shape[1]
        cast_dtype = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(text).to(cast_dtype)
        x = x + tower.positional_embedding[:n].to(cast_dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask[:n, :n])
        x = tower.ln_final(x)
        x = text_global_pool(x, text, parts["pool"], eos_token_id=parts["eos_id"])
        projection = tower.text_projection
        if projection is not None:
            x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return x

