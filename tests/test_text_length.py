"""Text towers run on the real token length and give the model's own embeddings.

Each case is a real open_clip architecture with random weights; the reference
is the model's own ``encode_text`` on the tokenizer's padded 77-token batch.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rsgeo.encoders.text_length import TextLengthTrimmer
from tests.conftest import TINY_CLIP_CFG

TEXTS = [
    "",
    "solar farm",
    "a satellite photo of flooded fields next to a river",
    "pine forest " * 60,  # longer than the context: truncated, nothing to trim
]
SHORT_TEXTS = TEXTS[:3]


def unit(x) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = x.detach().float().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def custom_text_clip(**text_cfg):  # type: ignore[no-untyped-def]
    import open_clip
    import torch

    torch.manual_seed(0)
    cfg = {**TINY_CLIP_CFG, "text_cfg": {**TINY_CLIP_CFG["text_cfg"], **text_cfg}}
    return open_clip.CustomTextCLIP(**cfg).eval()


def models():  # type: ignore[no-untyped-def]
    """``(name, model, tokenizer, expected kind)`` for each tower type rsgeo meets."""
    import open_clip
    import torch

    simple = open_clip.get_tokenizer("ViT-B-32")
    torch.manual_seed(0)
    yield "ViT-B-32 (OpenAI CLIP text tower)", open_clip.create_model("ViT-B-32").eval(), simple, "causal"
    torch.manual_seed(0)
    yield "RN50", open_clip.create_model("RN50").eval(), simple, "causal"
    yield "CustomTextCLIP argmax", custom_text_clip(), simple, "causal"
    yield "CustomTextCLIP eos", custom_text_clip(pool_type="eos", eos_id=49407), simple, "causal"
    yield "CustomTextCLIP first", custom_text_clip(pool_type="first"), simple, "causal"
    yield "CustomTextCLIP last (kept at 77)", custom_text_clip(pool_type="last"), simple, None
    yield "CustomTextCLIP bidirectional (kept at 77)", custom_text_clip(no_causal_mask=True), simple, None


def xlmr_model():  # type: ignore[no-untyped-def]
    import open_clip

    from tests.test_zoo_helpers import xlmr_clip_folder

    folder = xlmr_clip_folder()
    model = open_clip.create_model("local-dir:" + str(folder)).eval()
    return model, open_clip.get_tokenizer("local-dir:" + str(folder))


@pytest.mark.parametrize("case", list(range(7)))
def test_trimmed_text_features_equal_encode_text(case: int) -> None:
    import torch

    name, model, tokenizer, kind = list(models())[case]
    tokens = tokenizer(TEXTS)
    trimmer = TextLengthTrimmer(model, probe=tokens)
    assert trimmer.kind == kind, name
    with torch.inference_mode():
        full = unit(model.encode_text(tokens))
        short = unit(trimmer(tokens))
        # Short texts alone: the batch is cut to the longest of them (a few columns).
        full_short = unit(model.encode_text(tokenizer(SHORT_TEXTS)))
        short_short = unit(trimmer(tokenizer(SHORT_TEXTS)))
    np.testing.assert_allclose(short, full, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(short_short, full_short, atol=1e-5, err_msg=name)


def test_xlmr_tower_trims_padding_and_equals_encode_text() -> None:
    import torch

    model, tokenizer = xlmr_model()
    tokens = tokenizer(TEXTS + ["floresta de pinheiros perto do rio", "河流旁边的森林"])
    trimmer = TextLengthTrimmer(model, pad_id=tokenizer.tokenizer.pad_token_id, probe=tokens)
    assert trimmer.kind == "hf"
    with torch.inference_mode():
        np.testing.assert_allclose(unit(trimmer(tokens)), unit(model.encode_text(tokens)), atol=1e-5)
        few = tokenizer(["solar farm", "河流旁边的森林"])
        np.testing.assert_allclose(unit(trimmer(few)), unit(model.encode_text(few)), atol=1e-5)


def test_the_tower_runs_only_the_real_positions() -> None:
    """What makes a new query cheap: "solar farm" runs 4 positions, not 77."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32").eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    seen: list[int] = []
    model.transformer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    trimmer = TextLengthTrimmer(model)
    tokens = tokenizer(["solar farm"])
    assert tokens.shape[1] == 77
    with torch.inference_mode():
        trimmer(tokens)
    assert seen == [4]  # start, "solar", "farm", end


def test_encoder_uses_the_real_length_and_matches_open_clip() -> None:
    import open_clip
    import torch

    from rsgeo.encoders.openclip import OpenClipEncoder

    torch.manual_seed(0)
    encoder = OpenClipEncoder.from_name("ViT-B-32", device="cpu")
    assert encoder._encode_text.kind == "causal"
    ref_model = encoder.model
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.inference_mode():
        ref = unit(ref_model.encode_text(tokenizer(TEXTS)))
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), ref, atol=1e-5)


def test_a_shortcut_that_disagrees_is_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    """A future open_clip whose internals change costs speed, not correctness."""
    import open_clip

    class Broken(TextLengthTrimmer):
        def _encode_causal(self, text):  # type: ignore[no-untyped-def]
            return super()._encode_causal(text) * 0 + 1.0

    model = custom_text_clip()
    tokens = open_clip.get_tokenizer("ViT-B-32")(SHORT_TEXTS)
    with caplog.at_level(logging.WARNING, logger="rsgeo.encoders.text_length"):
        trimmer = Broken(model, probe=tokens)
    assert trimmer.kind is None
    assert "using the full length" in caplog.text
    np.testing.assert_allclose(unit(trimmer(tokens)), unit(model.encode_text(tokens)), atol=0)


def test_the_shortcut_is_checked_at_fp32_inside_a_bf16_autocast(caplog: pytest.LogCaptureFixture) -> None:
    """Under ``--precision bf16`` the two paths differ by bf16 rounding (~1e-3), not by the trimming."""
    import open_clip
    import torch

    from rsgeo.encoders.text_length import TOLERANCE

    model = custom_text_clip()
    tokens = open_clip.get_tokenizer("ViT-B-32")(SHORT_TEXTS)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16), torch.inference_mode():
        with caplog.at_level(logging.WARNING, logger="rsgeo.encoders.text_length"):
            trimmer = TextLengthTrimmer(model, probe=tokens)
        rounded = float(np.abs(unit(model.encode_text(tokens)) - unit(trimmer(tokens))).max())
    assert trimmer.kind == "causal" and "disagrees" not in caplog.text
    assert rounded > TOLERANCE  # what a check in bf16 compared: its own rounding, over the budget
