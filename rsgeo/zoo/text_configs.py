"""Configs of Hugging Face text towers that published open_clip folders omit.

An open_clip model with a Hugging Face text tower names it in
``text_cfg.hf_model_name`` (``"xlm-roberta-base"``) and open_clip fetches that
model's ``config.json`` from the hub at build time, even when the CLIP weights
are local. Shipping the few configs rsgeo's registry needs lets a cached or
copied model load with no network at all. Only architecture fields matter:
the weights come from the CLIP checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: ``FacebookAI/xlm-roberta-base`` ``config.json`` (architecture fields).
XLM_ROBERTA_BASE: dict[str, Any] = {
    "architectures": ["XLMRobertaForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 514,
    "model_type": "xlm-roberta",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "position_embedding_type": "absolute",
    "type_vocab_size": 1,
    "vocab_size": 250002,
}

TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    "xlm-roberta-base": XLM_ROBERTA_BASE,
    "FacebookAI/xlm-roberta-base": XLM_ROBERTA_BASE,
}


def known_text_config(name: str) -> dict[str, Any] | None:
    """The shipped config for hub model ``name``, or ``None``."""
    return TEXT_CONFIGS.get(name)


@contextmanager
def text_config_folder(config: dict[str, Any]) -> Iterator[Path]:
    """A temporary folder holding ``config.json``, for transformers to read.

    transformers reads the config once while open_clip builds the text tower;
    the folder is removed afterwards.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rsgeo-text-config-") as tmp:
        path = Path(tmp)
        (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
        yield path
