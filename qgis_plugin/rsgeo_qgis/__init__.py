"""rsgeo for QGIS: run remote-sensing CLIP models over scenes from Processing and a dock.

QGIS calls :func:`classFactory` to load the plugin.
"""


def classFactory(iface):  # noqa: N802 - QGIS API
    from .plugin import RsgeoPlugin

    return RsgeoPlugin(iface)
