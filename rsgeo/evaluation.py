"""Zero-shot accuracy on an image-folder dataset (one sub-folder per class).

Images go through the same preprocessing as scene chips
(:func:`rsgeo.preprocess.fit_chip`, then the encoder's normalisation), and
classes through the same prompts and class sets as ``rsgeo classify``, so the
number measured here is the number a user gets on a map. A folder whose
sub-folders are the labels of a built-in class set (EuroSAT's ``AnnualCrop``,
``Forest``, ...) is recognised and evaluated with that set's readable names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.classsets import (
    ClassSet,
    builtin_class_set,
    class_set_from_names,
    list_class_sets,
    load_class_set,
    match_key,
)
from rsgeo.errors import Cancelled, OptionError, SceneError, opt

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
_RASTER_SUFFIXES = frozenset({".tif", ".tiff"})

ProgressCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class ImageFolder:
    """An image-folder dataset: class folder names and ``(image, folder index)`` pairs."""

    root: Path
    folders: tuple[str, ...]
    items: tuple[tuple[Path, int], ...]

    def counts(self) -> list[int]:
        out = [0] * len(self.folders)
        for _, k in self.items:
            out[k] += 1
        return out


def scan_image_folder(root: str | os.PathLike[str], *, limit_per_class: int | None = None) -> ImageFolder:
    """List ``root/<class>/<image>`` files, sorted; ``limit_per_class`` keeps the first N of each."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise OptionError(f"dataset folder {root} does not exist; give a folder with one sub-folder per class")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise OptionError(
            f"{root} has {len(folders)} class sub-folder(s); an image-folder dataset needs one sub-folder per class (two or more)"
        )
    items: list[tuple[Path, int]] = []
    for k, name in enumerate(folders):
        files = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if limit_per_class is not None:
            files = files[:limit_per_class]
        if not files:
            logger.warning("class folder %s holds no images (%s)", root / name, ", ".join(sorted(IMAGE_SUFFIXES)))
        items += [(p, k) for p in files]
    if not items:
        raise OptionError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    return ImageFolder(root, tuple(folders), tuple(items))


def readable_label(folder: str) -> str:
    """``"AnnualCrop"`` → ``"annual crop"``, ``"baseball_diamond"`` → ``"baseball diamond"``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", folder)
    text = re.sub(r"[_\-.]+", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower() or folder


def class_set_for_folders(
    folders: Sequence[str], class_set: str | ClassSet | None = None, *, lang: str | None = None
) -> ClassSet:
    """The classes to evaluate, one per folder in folder order.

    The candidate classes are the dataset's: its folders. With a class set
    (given, or a built-in one whose labels the folder names all are), their
    readable names, synonyms and translations come from the set; otherwise the
    folder names are made readable (``AnnualCrop`` → "annual crop").
    """
    if class_set is None:
        found = _recognised_set(folders)
        if found is None:
            labels = [readable_label(f) for f in folders]
            return class_set_from_names(labels, name="folders", lang=lang, ids=list(folders))
        class_set = found
    cs = load_class_set(class_set, lang=lang) if not isinstance(class_set, ClassSet) else class_set.in_language(lang)
    mapping = [cs.index(f) for f in folders]
    missing = [f for f, i in zip(folders, mapping) if i is None]
    if missing:
        raise OptionError(
            f"class folder(s) {', '.join(missing[:5])} match no class of {cs.name}; rename them to the set's labels "
            f"({', '.join(cs.ids[:5])}, ...) or leave out {opt('class_set')} to use the folder names"
        )
    if len(set(mapping)) != len(mapping):
        raise OptionError(f"two class folders match the same class of {cs.name}; merge them or rename one")
    return cs.subset([i for i in mapping if i is not None])


def _recognised_set(folders: Sequence[str]) -> ClassSet | None:
    """The built-in set whose dataset labels include every folder name (the smallest one on a tie)."""
    keys = {match_key(f) for f in folders}
    candidates = []
    for name in list_class_sets():
        cs = builtin_class_set(name)
        if keys <= {match_key(i) for i in cs.ids}:
            candidates.append(cs)
    if not candidates:
        return None
    best = min(candidates, key=lambda cs: (len(cs), cs.name))
    logger.info("the class folders are labels of class set %s; using its readable names", best.name)
    return best


def read_image(path: Path, *, bands: tuple[int, ...] | None = None, stretch: str = "auto") -> np.ndarray:
    """One image as ``uint8`` ``(H, W, 3)``.

    JPEG/PNG and 8-bit RGB TIFFs are read with Pillow; other TIFFs (multi-band,
    16-bit, float) with rasterio, choosing ``bands`` and scaling with ``stretch``
    as for scenes (:mod:`rsgeo.stretch`).
    """
    if path.suffix.lower() not in _RASTER_SUFFIXES or bands is None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                if im.mode in ("RGB", "RGBA", "L", "P", "LA"):
                    return np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            if path.suffix.lower() not in _RASTER_SUFFIXES:
                raise SceneError(f"{path} is not an image Pillow can read ({exc}); remove it from the dataset") from None
    return _read_raster(path, bands, stretch)


def _read_raster(path: Path, bands: tuple[int, ...] | None, stretch: str) -> np.ndarray:
    from rasterio.errors import NotGeoreferencedWarning

    from rsgeo.scene import choose_bands, open_dataset
    from rsgeo.stretch import compute_stretch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with open_dataset(path) as ds:
            rgb = choose_bands(ds, bands)
            data = ds.read(list(rgb))
            scaled = compute_stretch(ds, rgb, stretch).apply(data)
    return np.ascontiguousarray(np.transpose(scaled, (1, 2, 0)))


@dataclass(frozen=True)
class EvalResult:
    """Zero-shot results: confusion matrix (rows: true class, columns: predicted)."""

    model: str
    dataset: str
    class_set: str
    class_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    confusion: np.ndarray
    top5_correct: int
    templates: tuple[str, ...]
    lang: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def n_images(self) -> int:
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        return float(np.trace(self.confusion) / max(self.n_images, 1))

    @property
    def top5(self) -> float:
        return self.top5_correct / max(self.n_images, 1)

    @property
    def support(self) -> np.ndarray:
        out: np.ndarray = self.confusion.sum(axis=1)
        return out

    @property
    def per_class_recall(self) -> np.ndarray:
        """Recall per class; NaN for classes without images."""
        support = self.support.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / support, np.nan)

    @property
    def mean_recall(self) -> float:
        """Balanced accuracy: mean recall over the classes that have images."""
        recall = self.per_class_recall
        return float(np.nanmean(recall)) if np.any(~np.isnan(recall)) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "class_set": self.class_set,
            "lang": self.lang,
            "templates": list(self.templates),
            "n_images": self.n_images,
            "top1": self.top1,
            "top5": self.top5,
            "mean_per_class_recall": self.mean_recall,
            "classes": [
                {"id": i, "name": n, "images": int(s), "recall": None if np.isnan(r) else float(r)}
                for i, n, s, r in zip(self.class_ids, self.class_names, self.support, self.per_class_recall)
            ],
            "confusion": self.confusion.tolist(),
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def report(self, *, confusion: bool | None = None) -> str:
        """A plain-text report; the confusion matrix is shown up to 30 classes unless asked."""
        lines = [
            f"model      {self.model}",
            f"dataset    {self.dataset} ({self.n_images} images, {len(self.class_ids)} classes, class set {self.class_set})",
            f"templates  {' | '.join(self.templates)}",
            f"top-1      {100 * self.top1:.2f} %",
            f"top-5      {100 * self.top5:.2f} %",
            f"mean recall {100 * self.mean_recall:.2f} % (balanced accuracy)",
        ]
        shown = [f"{i + 1:>3} " + (n if c == n else f"{n} [{c}]") for i, (c, n) in enumerate(zip(self.class_ids, self.class_names))]
        width = min(max(len(s) for s in shown), 72)
        lines += ["", f"{'    class':<{width}} {'images':>6} {'recall':>7}"]
        for label, s, r in zip(shown, self.support, self.per_class_recall):
            lines.append(f"{label[:width]:<{width}} {int(s):>6} {'-' if np.isnan(r) else f'{100 * r:6.1f}%':>7}")
        if confusion or (confusion is None and len(self.class_ids) <= 30):
            lines += ["", "confusion matrix (rows: true class, columns: predicted; classes numbered as above)"]
            width = max(3, len(str(int(self.confusion.max(initial=0)))) + 1)
            lines.append(" " * 4 + "".join(f"{j + 1:>{width}}" for j in range(len(self.class_ids))))
            for i, row in enumerate(self.confusion):
                lines.append(f"{i + 1:>3} " + "".join(f"{int(v):>{width}}" for v in row))
        return "\n".join(lines)


def evaluate_zero_shot(
    encoder: Any,
    dataset_dir: str | os.PathLike[str],
    *,
    class_set: str | ClassSet | None = None,
    templates: Sequence[str] | None = None,
    lang: str | None = None,
    batch_size: int = 32,
    limit_per_class: int | None = None,
    bands: tuple[int, ...] | None = None,
    stretch: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> EvalResult:
    """Zero-shot top-1/top-5 accuracy, per-class recall and confusion matrix.

    Args:
        encoder: Any :class:`~rsgeo.encoders.base.Encoder`.
        dataset_dir: ``dataset_dir/<class>/<image>``.
        class_set: A class set (name, file or object) whose labels are the
            folder names; ``None`` recognises built-in sets or uses the folder names.
        templates: Prompt templates; default: the model's for ``lang``.
        lang: Language of the class names.
        limit_per_class: Evaluate only the first N images of each class.
    """
    from rsgeo.language import warn_if_unsupported
    from rsgeo.preprocess import fit_chip
    from rsgeo.prompts import class_text_embeddings
    from rsgeo.zoo.templates import templates_or_default

    if batch_size < 1:
        raise OptionError(f"{opt('batch_size')} must be at least 1, got {batch_size}")
    folder = scan_image_folder(dataset_dir, limit_per_class=limit_per_class)
    cs = class_set_for_folders(folder.folders, class_set, lang=lang)
    chosen = templates_or_default(templates, encoder, cs.lang)
    messages = warn_if_unsupported(encoder, [t for terms in cs.prompt_names() for t in terms], lang=cs.lang)
    class_emb = class_text_embeddings(encoder, cs.prompts(chosen))  # as rsgeo.questions.class_embeddings
    n_classes = len(cs)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    top5 = 0
    total = len(folder.items)
    done = 0
    spec = encoder.image_spec
    for start in range(0, total, batch_size):
        if cancel is not None and cancel():
            raise Cancelled("evaluation cancelled")
        batch = folder.items[start : start + batch_size]
        chips = np.stack([fit_chip(read_image(p, bands=bands, stretch=stretch), spec) for p, _ in batch])
        emb = encoder.encode_images(chips)
        sims = emb @ class_emb.T
        order = np.argsort(-sims, axis=1, kind="stable")
        truth = np.array([k for _, k in batch])
        np.add.at(confusion, (truth, order[:, 0]), 1)
        top5 += int(np.sum(np.any(order[:, :5] == truth[:, None], axis=1)))
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return EvalResult(
        model=encoder.identity.model_id,
        dataset=str(folder.root),
        class_set=cs.name,
        class_ids=cs.ids,
        class_names=cs.names,
        confusion=confusion,
        top5_correct=top5,
        templates=tuple(chosen),
        lang=cs.lang,
        warnings=tuple(messages),
    )
