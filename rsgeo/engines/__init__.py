"""Inference engines for the image tower: torch, ONNX Runtime, OpenVINO (``--engine``).

* :mod:`rsgeo.engines.choice` — ``--engine``/``--precision`` → the engine and precision a run uses;
* :mod:`rsgeo.engines.extras` — which engines are installed, the pip line when one is not;
* :mod:`rsgeo.engines.export` — torch image tower → ONNX at the run's fixed batch shape, int8;
* :mod:`rsgeo.engines.cache` — exported files in the weights cache, written atomically;
* :mod:`rsgeo.engines.runtime` — an ONNX file compiled by ONNX Runtime or OpenVINO;
* :mod:`rsgeo.engines.encoder` — :class:`EngineEncoder`, the result behind the Encoder seam;
* :mod:`rsgeo.engines.cards` — a model's card, so a warm start builds no torch model;
* :mod:`rsgeo.engines.cpu` — the CPU flags ``--precision auto`` looks at.

Importing this package is light (no torch, no engine). See docs/engines.md.
"""

from __future__ import annotations

from pathlib import Path

from rsgeo.encoders.base import Encoder
from rsgeo.engines.choice import ENGINES, EngineChoice, choose

__all__ = ["ENGINES", "EngineChoice", "choose", "with_engine"]


def with_engine(encoder: Encoder, choice: EngineChoice, cache: Path, *, card_key: str | None = None) -> Encoder:
    """``encoder`` with its image tower on ``choice.engine`` (itself for torch); files kept in ``cache``.

    ``card_key``: the load key (:func:`rsgeo.zoo.load_keys.load_key`) under which the model's card is
    written once its tower is exported, for later warm starts.
    """
    if choice.engine == "torch":
        return encoder
    from rsgeo.engines.encoder import EngineEncoder
    from rsgeo.engines.export import image_tower_of

    base = image_tower_of(encoder)
    if base is None:  # choose() refuses engines for models without a torch tower
        return encoder
    return EngineEncoder(base, engine=choice.engine, precision=choice.precision, cache=cache,
                         check_budget=choice.check_budget, card_key=card_key)
