"""``--dense`` runs on a real scene: valid COGs whose cells follow the documented blending rule.

RGB.byte.tif (rasterio's test scene: 791 x 718 px, nodata corners) in 128 px chips at half
overlap, resized to the model's 224 px, encoded by the small random open_clip ViT of
``tiny_clip_dir`` (7 x 7 patches a chip): cheap, and every part real.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

import rsgeo
from rsgeo.definitions import schema
from rsgeo.options import RunOptions
from rsgeo.scene import ReadOptions
from tests.conftest import run_cli, shared

READ = ReadOptions(chip_size="128", overlap=0.5)
CLASSES = ("forest", "water", "urban area")


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("dense") / "rgb.gpkg"
    options = RunOptions(model=f"local-dir:{tiny_clip_dir}", dense=True, keep_patches=True, workers=1)
    rsgeo.classify(shared("RGB.byte.tif"), out, classes=CLASSES, read=READ, options=options)
    return out


def _metadata(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        return {k: json.loads(v) for k, v in db.execute(f"SELECT key, value FROM {schema.METADATA_TABLE}")}


def _stored_patches(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT tile_id, patches FROM {schema.PATCHES_TABLE} ORDER BY tile_id").fetchall()
    ids = np.array([r[0] for r in rows])
    patches = np.stack([np.frombuffer(r[1], "<f2").reshape(7, 7, -1) for r in rows]).astype(np.float64)
    return ids, patches


def _reference(path: Path, values: np.ndarray, ids: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Every cell by the rule of docs/dense.md, cell by cell: tent-weighted mean over the chips holding its centre."""
    from rsgeo.metadata import grid_from_metadata

    grid = grid_from_metadata(_metadata(path))
    size, cell = 128.0, 128.0 / 7
    rows, cols = np.divmod(ids, grid.n_cols)
    y0 = np.asarray(grid.row_offsets, float)[rows]
    x0 = np.asarray(grid.col_offsets, float)[cols]
    out = np.full((values.shape[-1], *shape), np.nan)
    for i in range(shape[0]):
        cy = (i + 0.5) * cell
        for j in range(shape[1]):
            cx = (j + 0.5) * cell
            inside = (cx >= x0) & (cx < x0 + size) & (cy >= y0) & (cy < y0 + size)
            if not inside.any():
                continue
            k = np.flatnonzero(inside)
            w = (1 - np.abs(cx - x0[k] - size / 2) / ((size + cell) / 2)) * (1 - np.abs(cy - y0[k] - size / 2) / ((size + cell) / 2))
            # A centre on a patch boundary (stride 64 px = 3.5 cells) belongs to the later patch.
            pr = np.minimum(np.floor((cy - y0[k]) / cell + 1e-9).astype(int), 6)
            pc = np.minimum(np.floor((cx - x0[k]) / cell + 1e-9).astype(int), 6)
            out[:, i, j] = (w[:, None] * values[k, pr, pc]).sum(0) / w.sum()
    return out


def test_dense_classify_writes_valid_cogs_with_the_layer_palette(dense_run: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    from rsgeo.styles import category_colours

    rasters = _metadata(dense_run)[schema.KEY_RASTERS]
    assert set(rasters) == {"landcover_dense_class", "landcover_dense_scores", "landcover_class", "landcover_scores"}
    class_path = dense_run.parent / rasters["landcover_dense_class"]["path"]
    scores_path = dense_run.parent / rasters["landcover_dense_scores"]["path"]
    for path in (class_path, scores_path):
        valid, errors, _ = cog_validate(str(path), strict=True)
        assert valid, errors
    with rasterio.open(shared("RGB.byte.tif")) as scene, rasterio.open(class_path) as classes:
        assert classes.crs == scene.crs
        # 128 px chips give 7 patches: cells of 128/7 scene pixels, over the whole scene.
        assert classes.transform.almost_equals(scene.transform * scene.transform.scale(128 / 7))
        assert (classes.height, classes.width) == (int(np.ceil(718 / (128 / 7))), int(np.ceil(791 / (128 / 7))))
        assert classes.nodata == 255
        cmap = classes.colormap(1)
        band = classes.read(1)
    for i, rgb in enumerate(category_colours(list(CLASSES))):
        assert cmap[i][:3] == tuple(int(v) for v in rgb.split(","))
    aux = Path(str(class_path) + ".aux.xml").read_text()
    assert "<Category>forest</Category><Category>water</Category><Category>urban area</Category>" in aux
    qml = class_path.with_suffix(".qml").read_text()  # QGIS opens it styled: the layer's palette, named
    assert 'type="paletted"' in qml and all(f'label="{c}"' in qml for c in CLASSES)
    with rasterio.open(scores_path) as scores_file:
        assert scores_file.descriptions == CLASSES
        scores = scores_file.read()
    covered = ~np.isnan(scores[0])
    np.testing.assert_allclose(scores[:, covered].sum(0), 1.0, atol=1e-5)  # blended probabilities
    np.testing.assert_array_equal(band[covered], scores[:, covered].argmax(0))
    assert (band[~covered] == 255).all()
    assert (~covered).any() and covered.any()  # RGB.byte's nodata corners leave chips out


def test_dense_scores_equal_the_blending_rule_from_the_stored_patches(dense_run: Path, tiny_clip_dir: Path) -> None:
    from rsgeo.questions import ClassChoice, class_embeddings
    from rsgeo.zoo import load_encoder

    encoder = load_encoder(f"local-dir:{tiny_clip_dir}", device="cpu")
    classes = class_embeddings(encoder, ClassChoice(classes=CLASSES)).embeddings.astype(np.float64)
    ids, patches = _stored_patches(dense_run)
    logits = encoder.logit_scale * patches @ classes.T
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    rasters = _metadata(dense_run)[schema.KEY_RASTERS]
    with rasterio.open(dense_run.parent / rasters["landcover_dense_scores"]["path"]) as f:
        scores = f.read()
    expected = _reference(dense_run, probs, ids, scores.shape[1:])
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(expected))  # nodata exactly where no chip
    np.testing.assert_allclose(scores, expected, atol=2e-5, equal_nan=True)


def test_a_stored_result_maps_a_new_text_from_its_patches(dense_run: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from rsgeo.zoo import load_encoder

    out = tmp_path / "q.gpkg"
    rsgeo.query(dense_run, out, texts=["a river"], options=RunOptions(dense=True))
    rasters = _metadata(out)[schema.KEY_RASTERS]
    # A copy elsewhere lists its own rasters only (the source's files stay beside the source).
    assert set(rasters) == {"query_a_river_dense", "query_a_river_similarity"}
    record = rasters["query_a_river_dense"]
    assert record["kind"] == schema.RASTER_SIMILARITY and record["bands"] == ["a river"]
    with rasterio.open(out.parent / record["path"]) as f:
        sims = f.read()
    vector = load_encoder(f"local-dir:{tiny_clip_dir}", device="cpu").encode_texts(["a river"])[0].astype(np.float64)
    ids, patches = _stored_patches(dense_run)
    expected = _reference(dense_run, (patches @ vector)[..., None], ids, sims.shape[1:])
    np.testing.assert_allclose(sims, expected, atol=2e-5, equal_nan=True)
    qml = (out.parent / record["path"]).with_suffix(".qml").read_text()
    assert 'type="singlebandpseudocolor"' in qml
    assert f'classificationMin="{np.nanmin(sims[0]):.6f}"' in qml and f'classificationMax="{np.nanmax(sims[0]):.6f}"' in qml


def test_a_model_without_patch_tokens_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "x.gpkg"
    done = run_cli(
        "classify", str(shared("RGB.byte.tif")), "-o", str(out), "--classes", "forest,water", "--model", "test:hash",
        "--dense", "--chip-size", "128", check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "cannot make dense maps: --dense needs an open_clip ViT" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_result_without_patches_is_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "plain.gpkg"
    run_cli("embed", str(shared("RGB.byte.tif")), "-o", str(out), "--model", "test:hash", "--chip-size", "256")
    done = run_cli("query", str(out), "--text", "water", "--dense", check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "rsgeo: error: plain.gpkg holds no patch embeddings, so --dense cannot map it; "
        "encode the scene again with --dense --keep-patches"
    )


def test_keep_patches_needs_dense_and_dense_runs_here() -> None:
    from rsgeo.errors import OptionError

    with pytest.raises(OptionError, match=r"^--keep-patches keeps the patch embeddings of a dense run; add --dense$"):
        RunOptions(keep_patches=True)
    with pytest.raises(OptionError, match=r"^--dense runs on this machine, not on a cluster; leave out --cluster$"):
        RunOptions(dense=True, cluster="local")
