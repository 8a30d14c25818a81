"""The plugin's user settings, stored in the QGIS profile (``QgsSettings``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from qgis.core import QgsSettings

from .definitions.models import DEFAULT_MODEL

_PREFIX = "rsgeo/"

#: How rsgeo runs: ``auto`` picks in-process when QGIS's Python has rsgeo and
#: torch, else an external environment.
BACKENDS = ("auto", "inprocess", "external")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class PluginSettings:
    """A snapshot of the settings; read with :func:`load`, write with :func:`save`."""

    backend: str = "auto"
    #: Path to a Python interpreter that has rsgeo installed (empty: auto-detect).
    python: str = ""
    model: str = DEFAULT_MODEL
    device: str = "auto"
    top_k: int = 20
    #: Local weights for the default model (``--checkpoint``: a file, or a folder for rs-m-clip); empty: download.
    checkpoint: str = ""
    #: Where downloaded weights are kept (``--cache-dir``); empty: the Hugging Face cache.
    cache_dir: str = ""

    def with_(self, **changes: object) -> "PluginSettings":
        return replace(self, **changes)  # type: ignore[arg-type]


def load() -> PluginSettings:
    s = QgsSettings()
    d = PluginSettings()
    backend = str(s.value(_PREFIX + "backend", d.backend))
    device = str(s.value(_PREFIX + "device", d.device))
    try:
        top_k = int(s.value(_PREFIX + "top_k", d.top_k))
    except (TypeError, ValueError):
        top_k = d.top_k
    return PluginSettings(
        backend=backend if backend in BACKENDS else d.backend,
        python=str(s.value(_PREFIX + "python", d.python) or ""),
        model=str(s.value(_PREFIX + "model", d.model) or d.model),
        device=device if device in DEVICES else d.device,
        top_k=max(1, top_k),
        checkpoint=str(s.value(_PREFIX + "checkpoint", d.checkpoint) or ""),
        cache_dir=str(s.value(_PREFIX + "cache_dir", d.cache_dir) or ""),
    )


def save(settings: PluginSettings) -> None:
    s = QgsSettings()
    s.setValue(_PREFIX + "backend", settings.backend)
    s.setValue(_PREFIX + "python", settings.python)
    s.setValue(_PREFIX + "model", settings.model)
    s.setValue(_PREFIX + "device", settings.device)
    s.setValue(_PREFIX + "top_k", settings.top_k)
    s.setValue(_PREFIX + "checkpoint", settings.checkpoint)
    s.setValue(_PREFIX + "cache_dir", settings.cache_dir)
