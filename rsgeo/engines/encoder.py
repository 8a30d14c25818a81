"""An image tower run by ONNX Runtime or OpenVINO behind the :class:`~rsgeo.encoders.base.Encoder` seam.

:class:`EngineEncoder` wraps a torch CLIP encoder. On the first batch of a
shape it exports the image tower to ONNX at that fixed shape (or reuses the
export in the cache, :mod:`rsgeo.engines.cache`) and compiles it; the text
tower stays the torch encoder's, at fp32 (a run embeds a few texts, chips by
the thousand). Everything else — reader, journal, resume, cluster — sees an
ordinary encoder: identity, input spec and logit scale are the torch model's.

A warm start (:meth:`EngineEncoder.from_card`) has the model's card instead of
the torch encoder (:mod:`rsgeo.engines.cards`): the encoder builds the torch
model only when it needs it (a text, a batch shape not exported yet), and
writes the card of a model it was given after the first export.

Static int8 on OpenVINO (``--engine openvino --precision int8``) is
calibrated on chips of the scene: the read loop hands them over first
(:meth:`EngineEncoder.calibrate`, chips chosen by
:mod:`rsgeo.engines.calibration`), and the calibrated file is cached under
their hash, so every run of the scene (resumed, on cluster workers) encodes
with the same ranges. Used on its own (``encode_images`` with no calibration
given), the encoder calibrates on the first batch it is asked to encode.

``--precision auto`` (bf16 on OpenVINO) is confirmed on the same chips of the
scene (on the first batch when used on its own): they also run at fp32, and
bf16 is kept only if every chip's bf16 embedding
has a cosine of at least :data:`AUTO_MIN_COSINE` to its fp32 one; the verdict
is kept in the cache, so later runs of the model on this machine skip the check.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rsgeo.definitions.schema import (
    ENGINE_AUTO_VERDICT_FILE,
    ENGINE_INT8_FILE,
    ENGINE_INT8_STATIC_FILE,
    ENGINE_ONNX_FILE,
    ENGINE_OPENVINO_BLOBS,
)
from rsgeo.encoders.base import (
    Calibration,
    EncoderBase,
    EncoderIdentity,
    EngineInfo,
    ImageSpec,
    TemplatesFor,
    l2_normalise,
)
from rsgeo.encoders.torch_clip import TorchClipEncoder
from rsgeo.engines import extras
from rsgeo.engines.cache import cached_file, key_folder, write_atomic
from rsgeo.engines.calibration import batch_sha256
from rsgeo.engines.cards import CARDS_FOLDER, ModelCard, card_path, write_card
from rsgeo.engines.export import (
    INT8_SCHEME,
    STATIC_INT8_SCHEME,
    export_onnx,
    onnx_key_fields,
    quantize_int8,
    quantize_int8_static,
    tower_name,
    weights_fingerprint,
)
from rsgeo.errors import ModelError
from rsgeo.engines.runtime import Tower, onnxruntime_tower, openvino_tower

logger = logging.getLogger(__name__)

#: ``--precision auto`` keeps bf16 when every calibration chip embeds with at least this
#: cosine to fp32. On ViT-B-32 the measured minimum is 0.9999 and top-class agreement ≥ 99 %
#: (docs/engines.md); a model whose bf16 drifts further runs at fp32.
AUTO_MIN_COSINE = 0.999


class EngineEncoder(EncoderBase):
    """A torch CLIP encoder whose image tower runs on ``engine`` at ``precision`` (see the module docstring)."""

    #: Batches laid out channel-first in memory become the engine's NCHW input without a transpose.
    channels_first = True

    def __init__(
        self, base: TorchClipEncoder | None, *, engine: str, precision: str, cache: Path, check_budget: bool = False,
        card: ModelCard | None = None, build: Callable[[], TorchClipEncoder] | None = None,
        templates: TemplatesFor | None = None, card_key: str | None = None,
    ) -> None:
        """``base``: the torch encoder; or ``None`` with its ``card`` and ``build``, which makes it when a
        text or an export needs it (a warm start, :mod:`rsgeo.engines.cards`), and the ``templates`` the
        built encoder would carry. ``card_key``: the load key under which a card of ``base`` is written
        after its first export."""
        if base is None and (card is None or build is None):
            raise ValueError("an EngineEncoder needs its torch encoder, or a model card and a way to build it")
        self._base = base
        self._build = build
        self._base_lock = threading.Lock()
        self._card_key = card_key
        source: ModelCard | TorchClipEncoder | None = card if card is not None else base
        assert source is not None  # checked above
        self.identity: EncoderIdentity = source.identity
        self.image_spec: ImageSpec = source.image_spec
        self.logit_scale: float = source.logit_scale
        self.embedding_dim: int = source.embedding_dim
        self.languages = source.languages
        self.training_extent_m = source.training_extent_m
        self.templates = templates if isinstance(source, ModelCard) else source.templates
        #: The weights' fingerprint and the tower's class (the export key), from the card or, when first
        #: needed, from the model.
        self._weights: str | None = card.weights if card is not None else None
        self._tower_name: str | None = card.tower if card is not None else None
        self.device = "cpu"
        self.cache = cache
        self.engine = EngineInfo(engine, extras.version(engine), precision)
        self._check_budget = check_budget
        self._towers: dict[int, Tower] = {}
        self._lock = threading.Lock()
        self._mean = np.asarray(self.image_spec.mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(self.image_spec.std, np.float32).reshape(1, 3, 1, 1)
        #: ``(file, made now)`` for every export file this encoder used (made or reused).
        self.exports: list[tuple[Path, bool]] = []
        self._calibration: np.ndarray | None = None  # uint8 chips, static int8 only
        #: The engine's version as one folder name (OpenVINO's holds a "/": "2026.4.1-…-releases/2026/4").
        self._version_name = str(self.engine.version).replace("/", "_").replace("\\", "_")

    @classmethod
    def from_card(
        cls, card: ModelCard, build: Callable[[], TorchClipEncoder], *, engine: str, precision: str, cache: Path,
        check_budget: bool = False, templates: TemplatesFor | None = None,
    ) -> EngineEncoder:
        """An engine encoder that builds its torch model only when needed (a warm start)."""
        return cls(None, engine=engine, precision=precision, cache=cache, check_budget=check_budget, card=card,
                   build=build, templates=templates)

    @property
    def base(self) -> TorchClipEncoder:
        """The torch encoder (its text tower, the image tower to export), built on first use after a warm start."""
        with self._base_lock:
            if self._base is None:
                assert self._build is not None
                logger.info("building %s (its card did not cover what this run needs)", self.identity.model_id)
                base = self._build()
                if base.identity != self.identity:
                    raise ModelError(
                        f"{self.identity.model_id} loads as other weights than its card in {self.cache} says; "
                        f"delete the folder {self.cache / CARDS_FOLDER} and run again"
                    )
                self._base = base
            return self._base

    @property
    def model_built(self) -> bool:
        """Whether the torch model has been built (``False`` for a warm start that needed none)."""
        return self._base is not None

    @property
    def needs_calibration(self) -> bool:
        """Whether the tower wants chips of the scene and has none yet: static int8 (its calibration)
        and ``--precision auto`` (the bf16 budget check), see the module docstring."""
        static = self.engine.name == "openvino" and self.engine.precision == "int8"
        return (static or self._check_budget) and self._calibration is None

    def _calibration_input(self, batch: int) -> np.ndarray | None:
        """The calibration chips, ``batch`` rows (repeated in turn), as the model's input; ``None`` without them."""
        if self._calibration is None:
            return None
        return self.model_input(self._calibration[np.arange(batch) % len(self._calibration)])

    def calibrate(self, chips: np.ndarray) -> None:
        """Chips of the scene (``uint8`` ``(N, H, W, 3)``) for static int8's calibration and ``--precision auto``'s
        budget check; none given: the first batch serves."""
        if len(chips):
            self._calibration = np.ascontiguousarray(chips, np.uint8)

    def model_input(self, chips: np.ndarray) -> np.ndarray:
        """``uint8`` ``(N, H, W, 3)`` chips → the normalised ``float32`` ``(N, 3, H, W)`` input.

        The same float32 operations as the torch encoders (``x / 255``, then
        ``(x - mean) / std``), so the engines see the very input torch sees.
        """
        x = chips.transpose(0, 3, 1, 2).astype(np.float32)
        x /= 255
        x -= self._mean
        x /= self._std
        return x

    def encode_images(self, chips: np.ndarray) -> np.ndarray:
        x = self.model_input(chips)
        return l2_normalise(self.tower(len(chips), x)(x))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.encode_texts(texts)

    def tower(self, batch: int, first: np.ndarray | None = None) -> Tower:
        """The compiled tower for batches of ``batch`` chips (exported and compiled on first use).

        ``first``, the first batch, is what static int8 is calibrated on and ``--precision auto``
        checked on when no chips of the scene were given (:meth:`calibrate`).
        """
        with self._lock:
            tower = self._towers.get(batch)
            if tower is None:
                tower = self._towers[batch] = self._compile(batch, first)
            return tower

    def _compile(self, batch: int, first: np.ndarray | None) -> Tower:
        import torch

        if self._weights is None:
            self._weights = weights_fingerprint(self.base)
        if self._tower_name is None:
            self._tower_name = tower_name(self.base)
        fields = onnx_key_fields(self.identity.model_id, self._weights, self._tower_name, self.image_spec.size, batch)
        folder = key_folder(self.cache, fields)
        onnx_path, made = cached_file(folder, ENGINE_ONNX_FILE, lambda p: export_onnx(self.base, batch, p), fields)
        self.exports.append((onnx_path, made))
        self._write_card()
        threads = max(1, torch.get_num_threads())
        name, precision = self.engine.name, self.engine.precision
        if name == "openvino" and precision == "int8":
            return self._static_int8(folder, onnx_path, batch, first, threads)
        if name == "onnxruntime":
            path = onnx_path
            if precision == "int8":
                derived = folder / f"onnxruntime-{self._version_name}-{INT8_SCHEME}"
                path, made = cached_file(derived, ENGINE_INT8_FILE, lambda p: quantize_int8(onnx_path, p))
                self.exports.append((path, made))
            return onnxruntime_tower(path, threads=threads)
        blobs = folder / f"openvino-{self._version_name}"
        tower, ran = openvino_tower(onnx_path, precision=precision, threads=threads, blobs=blobs / ENGINE_OPENVINO_BLOBS)
        if ran != precision:
            logger.info("OpenVINO runs %s at %s on this CPU (asked for %s)", self.identity.model_id, ran, precision)
            self.engine = dataclasses.replace(self.engine, precision=ran)
        if self._check_budget and ran == "bf16":
            self._check_budget = False
            probe = self._calibration_input(batch)
            if not self._bf16_within_budget(tower, onnx_path, threads, blobs, first if probe is None else probe):
                fp32, _ = openvino_tower(onnx_path, precision="fp32", threads=threads, blobs=blobs / ENGINE_OPENVINO_BLOBS)
                self.engine = dataclasses.replace(self.engine, precision="fp32")
                return fp32
        return tower

    def _write_card(self) -> None:
        """The card of this model under its load key, once its export exists (:mod:`rsgeo.engines.cards`)."""
        if self._card_key is None or self._base is None or self._weights is None or self._tower_name is None:
            return
        key, self._card_key = self._card_key, None
        if card_path(self.cache, key).is_file():
            return
        base = self._base
        card = ModelCard(
            identity=base.identity, image_spec=base.image_spec, logit_scale=float(base.logit_scale),
            embedding_dim=int(base.embedding_dim), languages=base.languages, training_extent_m=base.training_extent_m,
            registry_templates=base.templates is not None, weights=self._weights, tower=self._tower_name,
        )
        write_card(self.cache, key, card)

    def _static_int8(self, folder: Path, onnx_path: Path, batch: int, first: np.ndarray | None, threads: int) -> Tower:
        """The static int8 tower, calibrated on the scene's chips (or the first batch), cached by their hash."""
        calibration = self._calibration_input(batch)  # the file's fixed batch shape
        if calibration is None:
            if first is None:
                raise ValueError("a static int8 tower needs calibration chips or a first batch")
            calibration = first
        sha = batch_sha256(calibration)
        derived = folder / f"openvino-{self._version_name}-{STATIC_INT8_SCHEME}-{sha[:16]}"

        def quantize(path: Path) -> None:
            extras.require("onnxruntime", needed_by="openvino int8")  # its quantizer; not needed once cached
            quantize_int8_static(onnx_path, path, calibration)

        path, made = cached_file(derived, ENGINE_INT8_STATIC_FILE, quantize)
        self.exports.append((path, made))
        self.engine = dataclasses.replace(
            self.engine, calibration=Calibration(STATIC_INT8_SCHEME, len(calibration), sha)
        )
        tower, _ = openvino_tower(path, precision="int8", threads=threads, blobs=derived / ENGINE_OPENVINO_BLOBS)
        return tower

    def _bf16_within_budget(
        self, bf16: Tower, onnx_path: Path, threads: int, blobs: Path, first: np.ndarray | None
    ) -> bool:
        """Whether bf16 embeds ``first`` (the calibration chips) within :data:`AUTO_MIN_COSINE` of fp32 (cached verdict)."""
        verdict_path = blobs / ENGINE_AUTO_VERDICT_FILE
        try:
            verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
            return bool(verdict["bf16"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if first is None:
            return False
        fp32, _ = openvino_tower(onnx_path, precision="fp32", threads=threads, blobs=blobs / ENGINE_OPENVINO_BLOBS)
        min_cosine = float(np.min(np.sum(l2_normalise(bf16(first)) * l2_normalise(fp32(first)), axis=1)))
        ok = min_cosine >= AUTO_MIN_COSINE
        logger.info(
            "--precision auto: bf16 embeds the calibration chips with min cosine %.6f to fp32 (budget %.4f): %s",
            min_cosine, AUTO_MIN_COSINE, "bf16" if ok else "fp32",
        )
        text = json.dumps({"bf16": ok, "min_cosine": min_cosine, "budget": AUTO_MIN_COSINE, "chips": len(first)})
        blobs.mkdir(parents=True, exist_ok=True)
        write_atomic(verdict_path, lambda p: p.write_text(text, encoding="utf-8"))
        return ok
