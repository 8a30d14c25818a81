"""What users would otherwise write: the same job without rsgeo.

Three peers, each doing the whole job (scene file → image embeddings →
GeoPackage with one polygon and one embedding per chip) with the same model
and the same 224-px chips, or only the reading and preprocessing part:

* ``naive``: the per-chip loop of the model READMEs, batched: rasterio window
  → ``PIL.Image.fromarray`` → open_clip ``preprocess`` → ``torch.stack`` →
  ``encode_image``;
* ``readme``: the same, exactly as the READMEs write it: one chip at a time
  through the model (``preprocess(img).unsqueeze(0)``);
* ``torchgeo``: TorchGeo 0.8's ``RasterDataset`` + ``GridGeoSampler`` +
  ``DataLoader`` (with worker processes), normalised as open_clip does.

The peers are written plainly, as a user would, not tuned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

Batch = tuple[Any, list[tuple[float, float, float, float]]]  # (float tensor, chip bounds)


def chip_windows(width: int, height: int, size: int) -> list[Any]:
    """Non-overlapping ``size`` windows, the last row/column shifted to the edge."""
    from rasterio.windows import Window

    def offsets(n: int) -> list[int]:
        out = list(range(0, max(n - size, 0) + 1, size))
        if out[-1] + size < n:
            out.append(n - size)
        return out

    return [Window(c, r, size, size) for r in offsets(height) for c in offsets(width)]


# -- naive: rasterio window → PIL → preprocess → batch --------------------------------


def naive_batches(path: Path, preprocess: Any, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
    """Batches of ``preprocess``-ed chips, read one window at a time."""
    import rasterio
    import torch
    from PIL import Image
    from rasterio.windows import bounds as window_bounds

    with rasterio.open(path) as src:
        windows = chip_windows(src.width, src.height, 224)[:limit]
        for start in range(0, len(windows), batch_size):
            tensors, bounds = [], []
            for window in windows[start : start + batch_size]:
                chip = src.read((1, 2, 3), window=window).transpose(1, 2, 0)
                tensors.append(preprocess(Image.fromarray(chip)))
                bounds.append(window_bounds(window, src.transform))
            yield torch.stack(tensors), bounds


# -- TorchGeo 0.8 -----------------------------------------------------------------------


def torchgeo_batches(
    path: Path, mean: Any, std: Any, batch_size: int, workers: int, limit: int | None = None
) -> Iterator[Batch]:
    """TorchGeo's documented pipeline over one GeoTIFF, normalised for open_clip."""
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    class Scene(RasterDataset):  # type: ignore[misc]
        filename_glob = path.name
        is_image = True

    dataset = Scene(paths=str(path.parent))
    sampler = GridGeoSampler(dataset, size=224, stride=224)
    loader = DataLoader(
        dataset, sampler=sampler, batch_size=batch_size, num_workers=workers, collate_fn=stack_samples
    )
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    seen = 0
    for batch in loader:
        x = (batch["image"] / 255.0 - mean_t) / std_t
        bounds = [_slice_bounds(q) for q in batch["bounds"]]
        if limit is not None and seen + len(x) > limit:
            x, bounds = x[: limit - seen], bounds[: limit - seen]
        seen += len(x)
        yield x, bounds
        if limit is not None and seen >= limit:
            break
    del loader


def _slice_bounds(query: Any) -> tuple[float, float, float, float]:
    x, y = query[0], query[1]
    return (float(x.start), float(y.start), float(x.stop), float(y.stop))


# -- the model step and the output --------------------------------------------------


def encode_batches(model: Any, batches: Iterator[Batch]) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """``encode_image`` on each batch, L2-normalised, as the READMEs do."""
    import torch

    embeddings, bounds = [], []
    with torch.no_grad():
        for x, b in batches:
            emb = model.encode_image(x)
            embeddings.append((emb / emb.norm(dim=-1, keepdim=True)).numpy())
            bounds += b
    return np.concatenate(embeddings), bounds


def readme_loop(model: Any, preprocess: Any, path: Path, limit: int) -> tuple[np.ndarray, list[Any]]:
    """One chip at a time through the model, exactly as the model READMEs write it."""
    import rasterio
    import torch
    from PIL import Image
    from rasterio.windows import bounds as window_bounds

    embeddings, bounds = [], []
    with rasterio.open(path) as src:
        for window in chip_windows(src.width, src.height, 224)[:limit]:
            image = Image.fromarray(src.read((1, 2, 3), window=window).transpose(1, 2, 0))
            image = preprocess(image).unsqueeze(0)
            with torch.no_grad():
                features = model.encode_image(image)
                features /= features.norm(dim=-1, keepdim=True)
            embeddings.append(features.numpy()[0])
            bounds.append(window_bounds(window, src.transform))
    return np.stack(embeddings), bounds


def write_gpkg(out: Path, embeddings: np.ndarray, bounds: list[Any], crs: Any) -> None:
    """One polygon per chip with its embedding as a blob, like rsgeo's output."""
    import geopandas as gpd
    from shapely import box

    frame = gpd.GeoDataFrame(
        {"tile_id": np.arange(len(bounds)), "embedding": [e.astype(np.float32).tobytes() for e in embeddings]},
        geometry=[box(*b) for b in bounds],
        crs=crs,
    )
    frame.to_file(out, layer="tiles", driver="GPKG")


def consume(batches: Iterator[Batch]) -> int:
    """Reading and preprocessing only: count the chips."""
    return sum(len(x) for x, _ in batches)


PeerRun = Callable[[], int]
