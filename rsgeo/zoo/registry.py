"""The model registry: one record per published model, as data.

Adding a model is adding a :class:`ModelRecord` to :data:`MODELS`. Each
record says how the model is loaded (``loader``), where its files come from
(a Hugging Face repo pinned to a commit, or a URL), what it expects as input
and which languages its text tower reads.

Checksums are the SHA-256 of the published file. They were taken from the
Git LFS pointers the Hugging Face hub shows for the pinned commit; none was
re-computed from a download here (these machines have no internet), hence
``verified=False`` on every record. Where no published checksum could be
found the field is ``None`` and the file is loaded unchecked (the strict
state-dict match still applies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rsgeo.definitions.models import DEFAULT_MODEL
from rsgeo.encoders.base import ImageSpec
from rsgeo.errors import ModelError, opt

Loader = Literal["open_clip_hub", "open_clip_checkpoint", "hf_clip"]

#: Normalisation of OpenAI's CLIP, kept by every model below.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_224 = ImageSpec(size=224, mean=OPENAI_MEAN, std=OPENAI_STD, interpolation="bicubic", resize_mode="shortest")

#: The ten languages RS-M-CLIP was trained on (machine-translated captions).
RS_M_CLIP_LANGUAGES = ("en", "pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")


@dataclass(frozen=True)
class WeightsFile:
    """One published file: on the Hugging Face hub (``repo``) or at a plain ``url``.

    ``archive_member`` names the file to take out of a downloaded zip.
    """

    filename: str
    repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None
    url: str | None = None
    archive_member: str | None = None

    @property
    def download_url(self) -> str:
        """Where a browser or ``curl`` fetches the file."""
        if self.url:
            return self.url
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision or 'main'}/{self.filename}"


@dataclass(frozen=True)
class TrainingScale:
    """The ground side of a typical training image of a model, and where that figure comes from.

    ``extent_m`` is an estimate from the published image sizes and pixel sizes of
    the training datasets (``source`` names them); the default chip of a scene is
    this side in the scene's pixels (:func:`rsgeo.grid.default_chip_px`).
    """

    extent_m: float
    source: str


# Published image size x pixel size of the datasets these models were trained on:
#   UC Merced (Yang & Newsam, 2010; UCM-Captions, Qu et al., 2016): 256 px at 0.3 m (1 ft) = 78 m;
#   Sydney-Captions (Qu et al., 2016): 500 px at 0.5 m = 250 m;
#   RSICD (Lu et al., 2018, IEEE TGRS 56(4)): 224 px from Google Earth, Baidu Map, MapABC and
#     Tianditu, pixel size not fixed (mostly sub-metre to a few metres, i.e. about 100-500 m);
#   RSITMD (Yuan et al., 2022, IEEE TGRS 60): 256 px, taken from RSICD-like Google Earth scenes;
#   NWPU-RESISC45 / NWPU-Captions (Cheng et al., 2017; 2022): 256 px at 0.2-30 m, most below 2 m;
#   RemoteCLIP's detection and segmentation sets (DOTA, DIOR, iSAID, LoveDA, Potsdam ...): sub-metre
#     aerial and satellite images, 512-1024 px, i.e. about 100-500 m (Liu et al., 2024, TGRS 62, Table I);
#   BigEarthNet in RS5M (Sumbul et al., 2019): 120 px at 10 m = 1.2 km; fMoW / Million-AID: varied.
_CAPTION_SETS = TrainingScale(
    200.0,
    "estimate from RSICD (224 px, ~0.5-2 m), RSITMD (256 px), UCM-Captions (256 px x 0.3 m = 78 m), "
    "Sydney-Captions (500 px x 0.5 m = 250 m), NWPU-Captions (256 px, mostly < 2 m)",
)


@dataclass(frozen=True)
class ModelRecord:
    """Everything rsgeo knows about one published model.

    Attributes:
        name: The ``--model`` name.
        loader: ``open_clip_hub`` (an open_clip folder on the hub: config,
            weights, tokenizer), ``open_clip_checkpoint`` (a built-in open_clip
            architecture plus a state-dict file) or ``hf_clip`` (a transformers
            ``CLIPModel`` folder).
        architecture: The open_clip architecture (``ViT-B-32``), or a
            description for transformers models.
        files: What to fetch; the first file holds the weights.
        image_spec: The input the model was trained with.
        templates: Default prompt templates per language (``{}`` = class name).
        languages: ISO 639-1 codes the text tower reads.
        text_config: For open_clip models with a Hugging Face text tower whose
            published folder lacks the tower's ``config.json``: the key of the
            config rsgeo ships (:mod:`rsgeo.zoo.text_configs`).
        verified: ``True`` only when the checksums were re-computed from a
            download by rsgeo's maintainers.
        extra: The pip extra the loader needs (``transformers``), if any.
        training_scale: The ground side of its training images (:class:`TrainingScale`),
            or ``None`` (then the default chip is the model's input size in pixels).
    """

    name: str
    title: str
    loader: Loader
    architecture: str
    files: tuple[WeightsFile, ...]
    image_spec: ImageSpec
    templates: dict[str, tuple[str, ...]]
    languages: tuple[str, ...]
    reference: str
    verified: bool = False
    text_config: str | None = None
    extra: str | None = None
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())
    training_scale: TrainingScale | None = None

    @property
    def weights(self) -> WeightsFile:
        return self.files[0]

    @property
    def repo(self) -> str | None:
        return self.weights.repo

    @property
    def revision(self) -> str | None:
        return self.weights.revision


_RS_M_CLIP_REPO = "joaodaniel/RS-M-CLIP"
# "Upload figs" (2024-11-07): the commit after "Add model"; later commits touch only README.md.
_RS_M_CLIP_REV = "da9065164588daca743a39811e3ddc7c27f99f9e"
_REMOTECLIP_REPO = "chendelong/RemoteCLIP"
_REMOTECLIP_REV = "bf1d8a3ccf2ddbf7c875705e46373bfe542bce38"  # "Upload 3 files" (2023-07-27)
_GEORSCLIP_REPO = "Zilun/GeoRSCLIP"
_GEORSCLIP_REV = "4920188e6eba4e711ef9848cfd7cb77e874ee33f"
_OPENAI_REPO = "timm/vit_base_patch32_clip_224.openai"
_OPENAI_REV = "ab5b8ef490e86faa07d3523926b842c765de1de5"  # "Add model": open_clip config, weights, tokenizer


def _hub(repo: str, revision: str | None, *names: str) -> tuple[WeightsFile, ...]:
    return tuple(WeightsFile(name, repo=repo, revision=revision) for name in names)


def _remoteclip(arch: str, sha256: str, size: int) -> ModelRecord:
    return ModelRecord(
        name=f"remoteclip-{arch.lower()}",
        title=f"RemoteCLIP {arch} (Liu et al., 2024), English",
        loader="open_clip_checkpoint",
        architecture=arch,
        files=(
            WeightsFile(
                f"RemoteCLIP-{arch}.pt", repo=_REMOTECLIP_REPO, revision=_REMOTECLIP_REV, sha256=sha256, size=size
            ),
        ),
        image_spec=CLIP_224,
        # The paper's zero-shot template (RemoteCLIP issue #18).
        templates={"en": ("a satellite photo of {}.",)},
        languages=("en",),
        reference="https://github.com/ChenDelong1999/RemoteCLIP",
        notes="loaded as the README does: open_clip.create_model(arch) + the state dict, strictly",
        training_scale=TrainingScale(
            200.0,
            "estimate from RemoteCLIP's data (Liu et al., 2024, arXiv:2306.11029): RSICD, RSITMD, UCM (78 m) and "
            "sub-metre detection/segmentation images of 512-1024 px (DOTA, DIOR, iSAID, LoveDA ...), ~100-500 m",
        ),
    )


MODELS: tuple[ModelRecord, ...] = (
    ModelRecord(
        name="rs-m-clip",
        title="RS-M-CLIP (Silva et al., 2024): ViT-B/32 + XLM-RoBERTa, 10 languages",
        loader="open_clip_hub",
        architecture="xlm-roberta-base-ViT-B-32",
        files=(
            WeightsFile("open_clip_model.safetensors", repo=_RS_M_CLIP_REPO, revision=_RS_M_CLIP_REV),
            *_hub(
                _RS_M_CLIP_REPO,
                _RS_M_CLIP_REV,
                "open_clip_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "sentencepiece.bpe.model",
            ),
        ),
        image_spec=CLIP_224,
        templates={},  # the generic templates of each language (rsgeo.zoo.templates)
        languages=RS_M_CLIP_LANGUAGES,
        text_config="xlm-roberta-base",
        reference="https://huggingface.co/joaodaniel/RS-M-CLIP",
        notes="default model; the text tower's config is rsgeo's copy of xlm-roberta-base",
        # Silva et al. (2024, arXiv:2410.23370) assembled existing English caption sets of the
        # RSICD / RSITMD / UCM kind and machine-translated them into nine more languages.
        training_scale=_CAPTION_SETS,
    ),
    _remoteclip(
        "RN50", "11657d33a87fc197e19a7654a76a632415ebea42feb8a61025ef389f8990c0f9", 408397807
    ),
    _remoteclip(
        "ViT-B-32", "60014e395d930a3f2963d1d89c8522bf4ad56775571e4356e866864789af85c4", 605208421
    ),
    _remoteclip(
        "ViT-L-14", "fcc2a7e21e171f4ffcb7a9c0206b8b74ac0c9eb83c67b576958b7a4ed6c8cecb", 1710613765
    ),
    ModelRecord(
        name="georsclip-vit-b-32",
        title="GeoRSCLIP ViT-B/32 (Zhang et al., RS5M, 2024), English",
        loader="open_clip_checkpoint",
        # Fine-tuned from OpenAI's ViT-B/32, which open_clip builds with QuickGELU.
        architecture="ViT-B-32-quickgelu",
        files=(WeightsFile("ckpt/RS5M_ViT-B-32.pt", repo=_GEORSCLIP_REPO, revision=_GEORSCLIP_REV),),
        image_spec=CLIP_224,
        templates={},  # none published with the weights: rsgeo's generic English templates
        languages=("en",),
        reference="https://huggingface.co/Zilun/GeoRSCLIP",
        notes=(
            "no published checksum found; the README loads it with strict=False, "
            "rsgeo loads strictly and fails loudly if a key is missing"
        ),
        training_scale=TrainingScale(
            300.0,
            "estimate from RS5M (Zhang et al., 2024, arXiv:2306.11300): LAION-filtered aerial photos and captioned RS sets "
            "(Million-AID, fMoW: varied; BigEarthNet: 120 px x 10 m = 1.2 km); most sub-metre, a few km at most",
        ),
    ),
    ModelRecord(
        name="skyclip-vit-b-32",
        title="SkyCLIP ViT-B/32 top-50% (Wang et al., SkyScript, 2024), English",
        loader="open_clip_checkpoint",
        architecture="ViT-B-32",
        files=(
            WeightsFile(
                "SkyCLIP_ViT_B32_top50pct.zip",
                url="https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/SkyCLIP_ViT_B32_top50pct.zip",
                archive_member="SkyCLIP_ViT_B32_top50pct/epoch_20.pt",
            ),
        ),
        image_spec=CLIP_224,
        # SkyScript's prompt_templates.py, scene classification.
        templates={"en": ("a satellite photo of {}.", "a satellite image of {}")},
        languages=("en",),
        reference="https://github.com/wangzhecheng/SkyScript",
        notes="not on the Hugging Face hub: a zip on S3 holding an open_clip training checkpoint",
        training_scale=TrainingScale(
            200.0,
            "estimate from SkyScript (Wang et al., AAAI 2024): Google Earth Engine images of OpenStreetMap "
            "objects at 0.1-30 m, cut to the object's scale (most sub-metre to a few metres, a few hundred px)",
        ),
    ),
    ModelRecord(
        name="clip-rsicd-v2",
        title="CLIP-RSICD v2 (flax-community, 2021): transformers CLIPModel ViT-B/32, English",
        loader="hf_clip",
        architecture="transformers CLIPModel (ViT-B/32)",
        files=_hub(
            "flax-community/clip-rsicd-v2",
            None,  # no full commit hash could be found here: follows main
            "pytorch_model.bin",
            "config.json",
            "preprocessor_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.json",
            "merges.txt",
            "special_tokens_map.json",
        ),
        image_spec=CLIP_224,
        templates={"en": ("a satellite photo of {}.", "an aerial photograph of {}.")},
        languages=("en",),
        reference="https://huggingface.co/flax-community/clip-rsicd-v2",
        extra="transformers",
        notes="revision not pinned (follows main)",
        # Its model card: fine-tuned on RSICD, UCM and Sydney captions.
        training_scale=_CAPTION_SETS,
    ),
    ModelRecord(
        name="openai-vit-b-32",
        title="OpenAI CLIP ViT-B/32 (Radford et al., 2021): general-purpose baseline, English",
        loader="open_clip_hub",
        architecture="ViT-B-32-quickgelu",
        files=(
            WeightsFile("open_clip_model.safetensors", repo=_OPENAI_REPO, revision=_OPENAI_REV),
            *_hub(_OPENAI_REPO, _OPENAI_REV, "open_clip_config.json"),
        ),
        image_spec=CLIP_224,
        # The CLIP paper's EuroSAT prompt (openai/CLIP data/prompts.md).
        templates={"en": ("a centered satellite photo of {}.",)},
        languages=("en",),
        reference="https://github.com/openai/CLIP",
    ),
)



def model_names() -> list[str]:
    """Registered model names, in registry order."""
    return [m.name for m in MODELS]


def get_model(name: str) -> ModelRecord:
    """The record called ``name`` (case-insensitive); ModelError listing valid names."""
    key = name.strip().lower()
    for record in MODELS:
        if key == record.name or key in record.aliases:
            return record
    raise ModelError(
        f"unknown model {name!r}; use one of {', '.join(model_names())}, "
        f"or local-dir:PATH, hf-hub:ORG/REPO, hf-clip:PATH, arch:ARCH with {opt('checkpoint')}"
    )


def find_model(name: str) -> ModelRecord | None:
    """Like :func:`get_model` but ``None`` for unknown names."""
    try:
        return get_model(name)
    except ModelError:
        return None


def models_for_language(lang: str) -> list[ModelRecord]:
    """Registered models whose text tower reads ``lang``, the default model first."""
    found = [m for m in MODELS if lang in m.languages]
    return sorted(found, key=lambda m: m.name != DEFAULT_MODEL)
