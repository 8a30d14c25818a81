"""What rsgeo and its front ends must agree on, in the standard library only.

The QGIS plugin runs in QGIS's own Python, which usually cannot import rsgeo
(no torch, no rasterio of the right version). It uses this package as its own
copy of the definitions (``qgis_plugin/rsgeo_qgis/definitions`` is a link to
this folder and the plugin zip packs the files), so every name below has one
definition:

* :mod:`.schema` — the result GeoPackage: table, layer and column names,
  metadata keys and their (de)serialisation, journal and temporary file names,
  reserved names;
* :mod:`.lengths` — lengths with explicit units (chip size and stride in
  pixels or metres);
* :mod:`.models` — model names (``rs-m-clip``, ``arch:ViT-B-32``, ...) and the
  default model;
* :mod:`.options` — the user options, with their name in each front end
  (``chip_size``, ``--chip-size``, "Chip size"), so a library error can name
  an option the way the reader's front end spells it.

Modules here import only the standard library and each other (relatively).
"""
