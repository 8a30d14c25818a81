"""Builders of small models in the real published formats, offline, random weights.

* an open_clip folder with an XLM-RoBERTa text tower, laid out like
  ``joaodaniel/RS-M-CLIP`` (open_clip_config.json, open_clip_model.safetensors,
  tokenizer.json/tokenizer_config.json) plus the tiny text tower's config.json;
* a transformers ``CLIPModel.save_pretrained`` folder with CLIP's real
  byte-pair vocabulary (rebuilt from the file open_clip ships);
* an image-folder dataset cut from the real Sentinel-2 scene of ../shared/data.

The other zoo tests import these; the builders cache per process.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from tests.conftest import OPENAI_MEAN, OPENAI_STD, shared

#: Queries in several of RS-M-CLIP's languages, also the tokenizer's training text.
MULTILINGUAL_QUERIES = {
    "en": "a forest next to a river",
    "pt": "floresta de pinheiros perto do rio",
    "es": "bosque cerca del río",
    "fr": "forêt près de la rivière",
    "de": "Wald am Fluss",
    "zh": "河流旁边的森林",
    "ko": "강 옆의 숲",
    "ru": "лес у реки",
}
XLMR_CONTEXT = 32


def _tmpdir(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"rsgeo-{name}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _xlmr_tokenizer(folder: Path) -> int:
    """A SentencePiece-style Unigram tokenizer saved as transformers' XLM-R tokenizer; returns its size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    from rsgeo.classsets import load_class_set

    corpus = list(MULTILINGUAL_QUERIES.values())
    for lang in ("en", "pt", "zh", "ru"):
        corpus += list(load_class_set("eurosat", lang=lang).names)
    corpus += ["a satellite photo of {}.", "uma foto de satélite de", "的卫星照片"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    # XLM-R's special tokens and ids: <s>=0, <pad>=1, </s>=2, <unk>=3.
    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(corpus * 5, trainer)
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )
    fast.save_pretrained(str(folder))
    return int(tok.get_vocab_size())


def xlmr_clip_cfg(hf_model_name: str) -> dict:
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {
            "hf_model_name": hf_model_name,
            "hf_tokenizer_name": hf_model_name,
            "hf_pooler_type": "mean_pooler",
            "context_length": XLMR_CONTEXT,
        },
    }


def write_xlmr_clip_folder(folder: Path, *, hf_model_name: str | None = None, seed: int = 0) -> Path:
    """An RS-M-CLIP-style open_clip folder with a tiny XLM-R tower (random weights, ``seed``).

    ``hf_model_name=None`` writes the folder's own path (open_clip then loads the
    tower's config from it); ``"xlm-roberta-base"`` writes what RS-M-CLIP's
    published config says, which only rsgeo can resolve offline.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file
    from transformers import XLMRobertaConfig

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _xlmr_tokenizer(folder)
    XLMRobertaConfig(
        vocab_size=vocab, hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
        max_position_embeddings=XLMR_CONTEXT + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    ).save_pretrained(str(folder))
    config = {"model_cfg": xlmr_clip_cfg(str(folder)), "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False, pretrained_text=False)
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(100.0)))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    if hf_model_name is not None:
        config["model_cfg"] = xlmr_clip_cfg(hf_model_name)
        (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder


@functools.cache
def xlmr_clip_folder() -> Path:
    """The tiny XLM-R CLIP, its config naming its own folder (what open_clip can load offline)."""
    return write_xlmr_clip_folder(_tmpdir("xlmr") / "model")


@functools.cache
def rs_m_clip_layout_folder() -> Path:
    """The same weights in RS-M-CLIP's published layout: ``hf_model_name: xlm-roberta-base``."""
    src = xlmr_clip_folder()
    dst = _tmpdir("rsmclip") / "RS-M-CLIP"
    shutil.copytree(src, dst)
    config = json.loads((dst / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["hf_model_name"] = "xlm-roberta-base"
    config["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "xlm-roberta-base"
    (dst / "open_clip_config.json").write_text(json.dumps(config))
    return dst


def write_clip_bpe_files(folder: Path) -> None:
    """``vocab.json``/``merges.txt`` of OpenAI CLIP, rebuilt from open_clip's bundled BPE file.

    The same construction as OpenAI's tokenizer, so ids equal open_clip's SimpleTokenizer's.
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs) + "\n", encoding="utf-8")


def write_hf_clip_folder(folder: Path, *, projection_dim: int = 24, seed: int = 0, image_size: int = 64) -> Path:
    """A ``CLIPModel.save_pretrained`` folder with tokenizer and image processor (tiny, random)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    cfg = CLIPConfig(
        text_config={
            "vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 49406, "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": image_size, "patch_size": 16,
        },
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(cfg).eval().save_pretrained(str(folder))
    write_clip_bpe_files(folder)
    CLIPTokenizer.from_pretrained(str(folder)).save_pretrained(str(folder))
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(str(folder))
    return folder


@functools.cache
def hf_clip_folder() -> Path:
    return write_hf_clip_folder(_tmpdir("hfclip") / "clip")


# Land-use codes of eolearn/lulc.tif and the folder names used for them.
LULC_FOLDERS = {2: "forest", 3: "grassland", 8: "artificial surface"}
# The same classes named like EuroSAT's folders (auto-detected as the eurosat class set).
LULC_EUROSAT = {2: "Forest", 3: "HerbaceousVegetation", 8: "Residential"}


def write_s2_dataset(root: Path, *, names: dict[int, str] = LULC_FOLDERS, tile: int = 10, tif: bool = False) -> dict[str, int]:
    """Cut the real Sentinel-2 scene into ``tile``-px chips labelled by the land-use map.

    Chips are true colour (bands 4,3,2, reflectance 0..0.3 → 0..255) PNGs, or with
    ``tif`` the raw 13-band float32 chips. Only chips whose majority class covers
    60 % are kept. Returns the image count per folder.
    """
    import rasterio
    from PIL import Image

    with rasterio.open(shared("eolearn/s2_l1c_scene2_13band.tif")) as ds:
        data = ds.read()
    with rasterio.open(shared("eolearn/lulc.tif")) as ds:
        lulc = ds.read(1)
    counts: dict[str, int] = {}
    height, width = lulc.shape
    for r in range(0, height - tile + 1, tile):
        for c in range(0, width - tile + 1, tile):
            labels, n = np.unique(lulc[r : r + tile, c : c + tile], return_counts=True)
            code = int(labels[np.argmax(n)])
            if code not in names or n.max() < 0.6 * tile * tile:
                continue
            folder = root / names[code]
            folder.mkdir(parents=True, exist_ok=True)
            stem = f"s2_r{r:03d}_c{c:03d}"
            chip = data[:, r : r + tile, c : c + tile]
            if tif:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    with rasterio.open(
                        folder / f"{stem}.tif", "w", driver="GTiff", width=tile, height=tile, count=chip.shape[0], dtype="float32"
                    ) as out:
                        out.write(chip)
            else:
                rgb = np.clip(np.transpose(chip[[3, 2, 1]], (1, 2, 0)) / 0.3 * 255.0, 0, 255).round().astype(np.uint8)
                Image.fromarray(rgb).save(folder / f"{stem}.png")
            counts[names[code]] = counts.get(names[code], 0) + 1
    return counts
