"""Writes notebooks/quickstart.ipynb (cells kept here so diffs stay readable).

    python scripts/make_quickstart_notebook.py

It writes the cells without outputs; `make notebooks` runs this, then executes the
notebooks in place (scripts/run_notebooks.py) so they are committed with their outputs.
"""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# rsgeo quickstart\n\n"
        "Zero-shot land cover and a free-text query over a real Landsat-7 scene (Olinda, Brazil;\n"
        "the sample shipped in `data/sample/`), written as GeoPackage layers and shown as maps.\n\n"
        "> **About the model in this notebook.** It runs where no model weights can be downloaded\n"
        "> (our CI is offline), so it uses the real ViT-B-32 CLIP architecture with **randomly\n"
        "> initialised weights** (`arch:ViT-B-32`). The pipeline, the geometry and the files are real;\n"
        "> the class map and the heat map are *not* meaningful. With internet access, drop\n"
        "> `model=...` to use the default RS-M-CLIP weights, or point at local weights with\n"
        "> `model=\"local-dir:/path/to/model\"`."
    ),
    nbf.v4.new_code_cell(
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import rasterio\n"
        "from rasterio.plot import plotting_extent\n\n"
        "import rsgeo\n"
        "from rsgeo.pipeline import RunOptions\n"
        "from rsgeo.scene import ReadOptions\n\n"
        "plt.rcParams['figure.dpi'] = 72  # the notebook is committed with its figures: keep them small\n"
        "SCENE = Path('..') / 'data' / 'sample' / 'L7_ETMs.tif'\n"
        "OUT = Path('quickstart-output')\n"
        "OUT.mkdir(exist_ok=True)\n"
        "MODEL = RunOptions(model='arch:ViT-B-32', overwrite=True)  # random weights: see the note above\n"
        "READ = ReadOptions(bands=(3, 2, 1), chip_size=64)  # true colour; 64 px = 1.8 km chips"
    ),
    nbf.v4.new_markdown_cell("## The scene"),
    nbf.v4.new_code_cell(
        "with rasterio.open(SCENE) as src:\n"
        "    rgb = src.read((3, 2, 1)).transpose(1, 2, 0)\n"
        "    extent = plotting_extent(src)\n"
        "    crs = src.crs\n"
        "fig, ax = plt.subplots(figsize=(6, 6))\n"
        "ax.imshow(rgb, extent=extent)\n"
        "ax.set_title(f'L7_ETMs.tif, bands 3,2,1 ({crs})')\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell(
        "## Zero-shot land cover\n\n"
        "Each chip is scored against the class prompts; the `landcover` layer holds one score\n"
        "column per class, `top_class` and `top_score`."
    ),
    nbf.v4.new_code_cell(
        "classes = ['dense forest', 'urban area', 'sea', 'beach', 'farmland']\n"
        "result_path = rsgeo.classify(SCENE, OUT / 'olinda.gpkg', classes=classes, read=READ, options=MODEL)\n"
        "result = rsgeo.open_result(result_path)\n"
        "landcover = result.read_layer('landcover')\n"
        "landcover[['tile_id', 'row', 'col', 'valid_fraction', 'top_class', 'top_score']].head()"
    ),
    nbf.v4.new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 6))\n"
        "ax.imshow(rgb, extent=extent)\n"
        "landcover.plot(column='top_class', ax=ax, alpha=0.6, legend=True, edgecolor='white', linewidth=0.3)\n"
        "ax.set_title('top class per chip (random weights)')\n"
        "plt.show()\n"
        "assert np.allclose(landcover[[c.replace(' ', '_') for c in classes]].sum(axis=1), 1, atol=1e-5)"
    ),
    nbf.v4.new_markdown_cell(
        "## Ask a new question of the encoded scene\n\n"
        "The GeoPackage keeps the chip embeddings: a text query only runs the text encoder."
    ),
    nbf.v4.new_code_cell(
        "harbour = result.query('harbour with ships')\n"
        "fig, ax = plt.subplots(figsize=(6, 6))\n"
        "ax.imshow(rgb, extent=extent)\n"
        "harbour.plot(column='similarity', ax=ax, cmap='viridis', alpha=0.7, legend=True)\n"
        "ax.set_title('similarity to \"harbour with ships\" (random weights)')\n"
        "plt.show()\n"
        "harbour.head()"
    ),
    nbf.v4.new_markdown_cell("## More like this tile\n\nQuery by example: the chips most similar to a chosen one."),
    nbf.v4.new_code_cell(
        "anchor = int(landcover.tile_id.iloc[0])\n"
        "like = result.query(like_tiles=[anchor], top_k=5)\n"
        "assert int(like.tile_id.iloc[0]) == anchor\n"
        "like[['tile_id', 'similarity', 'rank']]"
    ),
    nbf.v4.new_markdown_cell(
        "## Maps: the class raster and a dense sub-chip map\n\n"
        "Beside the GeoPackage, `classify` wrote Cloud-Optimised GeoTIFFs (listed under `rasters` in the\n"
        "metadata): the top class, paletted with the classes' colours. With `dense=True` the ViT's patch\n"
        "tokens are scored too (SegEarth-OV's training-free last block, docs/dense.md): 7 x 7 cells a chip,\n"
        "blended where chips overlap. Random weights again: the grain, not the land cover."
    ),
    nbf.v4.new_code_cell(
        "dense_path = rsgeo.classify(SCENE, OUT / 'olinda-dense.gpkg', classes=classes, read=READ,\n"
        "                            options=RunOptions(model='arch:ViT-B-32', overwrite=True, dense=True))\n"
        "rasters = rsgeo.open_result(dense_path).metadata['rasters']\n"
        "fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))\n"
        "for ax, name in zip(axes, ['landcover_class', 'landcover_dense_class']):\n"
        "    with rasterio.open(dense_path.parent / rasters[name]['path']) as src:\n"
        "        band = src.read(1)\n"
        "        palette = np.array([src.colormap(1)[i][:3] for i in range(256)], np.uint8)\n"
        "        picture = np.where((band == src.nodata)[..., None], 255, palette[band])\n"
        "        ax.imshow(rgb, extent=extent)\n"
        "        ax.imshow(picture, extent=plotting_extent(src), alpha=0.7)\n"
        "        ax.set_title(f'{name}: {src.width} x {src.height} cells')\n"
        "plt.show()\n"
        "sorted(rasters)"
    ),
    nbf.v4.new_markdown_cell(
        "The same file opens in QGIS with the styles stored in it; the rsgeo QGIS plugin adds\n"
        "live queries on top (see `docs/qgis.md`)."
    ),
]

PATH = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def build() -> nbf.NotebookNode:
    """The quickstart notebook, unexecuted."""
    return nbf.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )


if __name__ == "__main__":
    nbf.write(build(), PATH)
    print(f"wrote {PATH}")
