"""``rsgeo eval``: zero-shot accuracy on image folders made from the real scenes (issue 3, point 3)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsgeo.encoders.base import EncoderBase, EncoderIdentity, ImageSpec, l2_normalise
from rsgeo.encoders.testing import HashEncoder
from rsgeo.errors import Cancelled, OptionError
from rsgeo.evaluation import (
    class_set_for_folders,
    evaluate_zero_shot,
    read_image,
    readable_label,
    scan_image_folder,
)
from tests.conftest import run_cli
from tests.test_zoo_helpers import LULC_EUROSAT, write_s2_dataset


@pytest.fixture(scope="module")
def s2_png(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("s2png")
    return root, write_s2_dataset(root)


class ColourOracle(EncoderBase):
    """Knows the answer: an image's dominant channel is its class (red, green, blue)."""

    def __init__(self) -> None:
        self.identity = EncoderIdentity("test:oracle")
        self.image_spec = ImageSpec(size=8, mean=(0.5,) * 3, std=(0.5,) * 3)
        self.logit_scale = 100.0
        self.embedding_dim = 3
        self.device = "cpu"
        self.languages = ("en",)

    def encode_images(self, chips: np.ndarray) -> np.ndarray:
        assert chips.shape[1:] == (8, 8, 3) and chips.dtype == np.uint8  # fit_chip ran
        return l2_normalise(np.eye(3, dtype=np.float32)[chips.reshape(len(chips), -1, 3).mean(1).argmax(1)])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalise(np.array([[w in t for w in ("red", "green", "blue")] for t in texts], np.float32))


def _solid(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), rgb, np.uint8)).save(path)


def test_metrics_on_a_dataset_with_known_answers(tmp_path: Path) -> None:
    colours = {"red": (200, 10, 10), "green": (10, 200, 10), "blue": (10, 10, 200)}
    counts = {"red": 5, "green": 3, "blue": 4}
    for name, n in counts.items():
        for i in range(n):
            _solid(tmp_path / name / f"{i}.png", colours[name])
    _solid(tmp_path / "red" / "wrong1.jpg", colours["blue"])  # two mislabelled images
    _solid(tmp_path / "red" / "wrong2.png", colours["blue"], size=(9, 40))
    (tmp_path / "red" / "notes.txt").write_text("not an image")
    seen: list[tuple[int, int]] = []
    result = evaluate_zero_shot(ColourOracle(), tmp_path, templates=["{}"], batch_size=4, progress=lambda d, t: seen.append((d, t)))
    # Folders are sorted: blue, green, red.
    assert result.class_ids == ("blue", "green", "red")
    np.testing.assert_array_equal(result.confusion, [[4, 0, 0], [0, 3, 0], [2, 0, 5]])
    assert result.n_images == 14 and result.top1 == pytest.approx(12 / 14)
    np.testing.assert_allclose(result.per_class_recall, [1.0, 1.0, 5 / 7])
    assert result.mean_recall == pytest.approx((1 + 1 + 5 / 7) / 3)
    assert result.top5 == 1.0  # three classes: always in the top five
    assert seen[-1] == (14, 14) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    report = result.report()
    assert "85.71 %" in report and "confusion matrix" in report
    data = json.loads(result.to_json())
    assert data["confusion"] == [[4, 0, 0], [0, 3, 0], [2, 0, 5]] and data["classes"][2]["recall"] == pytest.approx(5 / 7)
    limited = evaluate_zero_shot(ColourOracle(), tmp_path, templates=["{}"], limit_per_class=2)
    assert limited.n_images == 6
    with pytest.raises(Cancelled):
        evaluate_zero_shot(ColourOracle(), tmp_path, templates=["{}"], cancel=lambda: True)


def test_evaluation_uses_the_production_preprocessing(s2_png: tuple[Path, dict[str, int]]) -> None:
    """Same numbers as reading each image, fit_chip, encode and argmax by hand."""
    from rsgeo.questions import ClassChoice, class_embeddings
    from rsgeo.preprocess import fit_chip

    root, counts = s2_png
    assert sum(counts.values()) >= 20 and len(counts) >= 2
    enc = HashEncoder(size=32)
    result = evaluate_zero_shot(enc, root, batch_size=7)
    cs = class_set_for_folders(scan_image_folder(root).folders)
    class_emb = class_embeddings(enc, ClassChoice(class_set=cs)).embeddings
    manual = np.zeros_like(result.confusion)
    folder = scan_image_folder(root)
    for path, k in folder.items:
        chip = fit_chip(np.asarray(Image.open(path).convert("RGB")), enc.image_spec)
        assert chip.shape == (32, 32, 3)
        manual[k, int(np.argmax(enc.encode_images(chip[None]) @ class_emb.T))] += 1
    np.testing.assert_array_equal(result.confusion, manual)
    assert result.support.tolist() == [counts[f] for f in folder.folders]


def test_multiband_float_tiffs_with_bands_and_stretch(tmp_path: Path, s2_png: tuple[Path, dict[str, int]]) -> None:
    """The 13-band float32 chips, read with --bands 4,3,2 --stretch range:0,0.3, equal the PNGs."""
    root_png, _ = s2_png
    root_tif = tmp_path / "tif"
    write_s2_dataset(root_tif, tif=True)
    first = min((root_tif / "forest").glob("*.tif"))
    png = np.asarray(Image.open(root_png / "forest" / first.with_suffix(".png").name))
    np.testing.assert_array_equal(read_image(first, bands=(4, 3, 2), stretch="range:0,0.3"), png)
    enc = HashEncoder(size=32)
    a = evaluate_zero_shot(enc, root_png)
    b = evaluate_zero_shot(enc, root_tif, bands=(4, 3, 2), stretch="range:0,0.3")
    np.testing.assert_array_equal(a.confusion, b.confusion)
    with pytest.raises(OptionError, match="--bands"):
        read_image(first)  # 13 bands and no colour interpretation: the bands must be chosen


def test_class_sets_for_folders() -> None:
    assert readable_label("AnnualCrop") == "annual crop" and readable_label("baseball_diamond") == "baseball diamond"
    cs = class_set_for_folders(["Forest", "HerbaceousVegetation", "SeaLake"])
    assert cs.name == "eurosat" and cs.names == ("forest", "herbaceous vegetation land", "sea or lake")
    assert class_set_for_folders(["Forest", "SeaLake"], lang="pt").names == ("floresta", "mar ou lago")
    ucm = class_set_for_folders(["denseresidential", "golfcourse"])
    assert ucm.name == "uc-merced" and ucm.names == ("dense residential area", "golf course")
    plain = class_set_for_folders(["solar_farm", "OpenWater"])
    assert plain.names == ("solar farm", "open water") and plain.ids == ("solar_farm", "OpenWater")
    with pytest.raises(OptionError, match="match no class of eurosat"):
        class_set_for_folders(["Forest", "Glacier"], "eurosat")


def test_bad_dataset_folders(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")
    (tmp_path / "only").mkdir()
    with pytest.raises(OptionError, match="one sub-folder per class"):
        scan_image_folder(tmp_path)
    (tmp_path / "other").mkdir()
    with pytest.raises(OptionError, match="holds no images"):
        scan_image_folder(tmp_path)


@pytest.mark.slow
def test_eval_cli_end_to_end(tmp_path: Path, tiny_clip_dir: Path) -> None:
    """The real command on EuroSAT-named folders cut from the Sentinel-2 scene, with a real (tiny) CLIP.

    The model folder is given as a plain path (recognised by its open_clip_config.json), so rsgeo knows
    its byte-pair vocabulary reads English: Portuguese class names (--lang pt) get one warning.
    """
    root = tmp_path / "eurosat-like"
    counts = write_s2_dataset(root, names=LULC_EUROSAT)
    report = tmp_path / "report.json"
    proc = run_cli("eval", str(root), "--model", str(tiny_clip_dir), "--lang", "pt", "--limit", "6",
                   "-o", str(report), "--progress", "none", "--batch-size", "4")
    data = json.loads(report.read_text())
    n = sum(min(6, c) for c in counts.values())
    assert data["n_images"] == n and np.sum(data["confusion"]) == n
    assert data["class_set"] == "eurosat" and data["lang"] == "pt"
    assert [c["id"] for c in data["classes"]] == sorted(counts)
    assert data["classes"][0]["name"] == "floresta"
    assert data["templates"] == ["uma foto de satélite de {}.", "uma imagem aérea de {}."]
    assert 0.0 <= data["top1"] <= 1.0 and data["top5"] == 1.0
    assert "top-1" in proc.stdout and "vegetação herbácea [HerbaceousVegetation]" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "--lang pt" in warnings[0] and "--model rs-m-clip" in warnings[0]
    assert data["warnings"] and f"wrote {report}" in proc.stderr and "Traceback" not in proc.stderr
