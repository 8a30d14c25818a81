"""Resolve a ``--model`` string to an :class:`~rsgeo.encoders.base.Encoder`.

Accepted forms:

* ``local-dir:PATH`` — open_clip's own local folder format;
* ``hf-hub:ORG/REPO`` — an open_clip model on the Hugging Face hub;
* ``arch:ARCH`` — a built-in open_clip architecture, with ``checkpoint=`` a
  state dict, or randomly initialised without one (tests, benchmarks);
* ``test:hash`` — the deterministic test encoder;
* ``hf-clip:PATH`` — a transformers ``CLIPModel`` folder (or any model folder path);
* a registry name (``rs-m-clip``, ...), see :mod:`rsgeo.zoo`.
"""

from __future__ import annotations

from pathlib import Path

from rsgeo.encoders.base import Encoder

DEFAULT_MODEL = "rs-m-clip"


def load_encoder(
    model: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    precision: str = "fp32",
    checkpoint: str | Path | None = None,
    cache_dir: str | None = None,
) -> Encoder:
    """Build the encoder named by ``model`` (see the module docstring)."""
    if model.startswith("test:"):
        from rsgeo.encoders.testing import HashEncoder

        return HashEncoder()
    if model.startswith("local-dir:"):
        from rsgeo.zoo.loading import load_open_clip_dir

        folder = Path(model[len("local-dir:") :]).expanduser().resolve()
        return load_open_clip_dir(folder, device=device, precision=precision, checkpoint=checkpoint)
    if model.startswith("hf-hub:"):
        from rsgeo.encoders.openclip import OpenClipEncoder

        return OpenClipEncoder.from_name(
            model, device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint
        )
    if model.startswith("arch:"):
        from rsgeo.zoo.openclip_build import build_from_arch

        arch = model[len("arch:") :]
        return build_from_arch(arch, checkpoint, model_id=model, device=device, precision=precision)
    return _load_registered(model, device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint)


def _load_registered(
    name: str, *, device: str | None, precision: str, cache_dir: str | None, checkpoint: str | Path | None = None
) -> Encoder:
    # Registry names, hf-clip:PATH and model folders: the model zoo (rsgeo.zoo).
    from rsgeo.zoo.loading import load_registered

    return load_registered(name, device=device, precision=precision, cache_dir=cache_dir, checkpoint=checkpoint)


def canonical_model_id(model: str) -> str:
    """The id a model is recorded under: ``local-dir:`` paths made absolute."""
    if model.startswith("local-dir:"):
        return "local-dir:" + str(Path(model[len("local-dir:") :]).expanduser().resolve())
    return model
