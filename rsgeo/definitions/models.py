"""Model names: how a ``model`` string is read, and the default model.

A model is named by a registry name (``rs-m-clip``, see ``rsgeo models``) or
by a scheme and a value:

* ``local-dir:PATH`` — an open_clip folder on disk;
* ``hf-hub:ORG/REPO`` — an open_clip model on the Hugging Face hub;
* ``arch:ARCH`` — a built-in open_clip architecture (weights from a checkpoint,
  or random for tests and benchmarks);
* ``hf-clip:PATH`` — a transformers ``CLIPModel`` folder;
* ``test:NAME`` — the deterministic test encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

#: The model used when none is given.
DEFAULT_MODEL = "rs-m-clip"

Scheme = Literal["registry", "local-dir", "hf-hub", "arch", "hf-clip", "test"]
SCHEMES: tuple[Scheme, ...] = ("local-dir", "hf-hub", "arch", "hf-clip", "test")


@dataclass(frozen=True)
class ModelName:
    """A parsed model string: its scheme and the value after ``scheme:``."""

    scheme: Scheme
    value: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Read ``text``; ``ValueError`` for a blank name or a scheme with nothing after it."""
        text = text.strip()
        if not text:
            raise ValueError("the model name is blank")
        for scheme in SCHEMES:
            if text.startswith(scheme + ":"):
                value = text[len(scheme) + 1 :]
                if not value.strip() and scheme != "test":
                    raise ValueError(f"{text!r} names no {'path' if 'dir' in scheme or scheme == 'hf-clip' else 'model'} after {scheme}:")
                return cls(scheme, value)
        return cls("registry", text)

    @property
    def is_path(self) -> bool:
        """Whether the value is a path on this machine."""
        return self.scheme in ("local-dir", "hf-clip")

    def canonical(self) -> str:
        """The id a model is recorded under: ``local-dir:`` paths made absolute."""
        if self.scheme == "local-dir":
            return "local-dir:" + os.path.realpath(os.path.expanduser(self.value))
        return str(self)

    def __str__(self) -> str:
        return self.value if self.scheme == "registry" else f"{self.scheme}:{self.value}"


def canonical_model_id(model: str) -> str:
    """The id ``model`` is recorded under (see :meth:`ModelName.canonical`)."""
    return ModelName.parse(model).canonical()
