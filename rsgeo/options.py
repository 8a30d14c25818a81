"""How a run executes: the model, device, batch, storage and resume options.

:class:`RunOptions` holds what changes *how* a run goes, not *what* it answers
(but ``precision`` and ``embedding_dtype``, which change the numbers a little
and are recorded). Progress and cancellation callbacks are typed here too, for
every long call of the library.
"""

from __future__ import annotations

import dataclasses

from rsgeo.callbacks import CancelCheck, ProgressCallback
from rsgeo.devices import check_device_available, check_device_name
from rsgeo.encoders.base import Encoder
from rsgeo.errors import OptionError, opt
from rsgeo.journal import embedding_dtype

__all__ = ["CancelCheck", "ENGINES", "PRECISIONS", "ProgressCallback", "RunOptions"]

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
#: Engines of the image tower (:mod:`rsgeo.engines.choice`; kept here so ``import rsgeo`` stays light).
ENGINES = ("auto", "torch", "onnxruntime", "openvino")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How the model runs; none of it changes the results (but precision)."""

    model: str | None = None
    encoder: Encoder | None = None
    device: str | None = None
    precision: str = "fp32"
    #: What runs the image tower: ``auto``, ``torch``, ``onnxruntime``, ``openvino`` (see docs/engines.md).
    engine: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    checkpoint: str | None = None
    cache_dir: str | None = None
    embedding_dtype: str = "float32"
    resume: bool = False
    overwrite: bool = False
    #: ``local``, ``local:N`` or a Dask scheduler address; ``None`` runs here (see :mod:`rsgeo.cluster`).
    cluster: str | None = None
    #: Dask priority of this run's blocks on the cluster (higher runs first): a batch gives
    #: earlier scenes precedence while several scenes are in flight.
    cluster_priority: int = 0
    #: Skip the COG rasters beside a classify/query result (:mod:`rsgeo.rasters`).
    no_rasters: bool = False
    #: Dense sub-chip maps from patch tokens (``--dense``, open_clip ViTs; see docs/dense.md): rasters
    #: of every land-cover and query layer at patch resolution, besides the layers.
    dense: bool = False
    #: Keep the patch embeddings in the result (float16, ``rsgeo_patches``), for dense maps of new texts.
    keep_patches: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise OptionError(f"unknown {opt('precision')} {self.precision!r}; use {', '.join(PRECISIONS)}")
        if self.engine not in ENGINES:
            raise OptionError(f"unknown {opt('engine')} {self.engine!r}; use one of {', '.join(ENGINES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionError(f"{opt('batch_size')} must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"{opt('workers')} must be at least 1, got {self.workers}")
        embedding_dtype(self.embedding_dtype)
        if self.keep_patches and not self.dense:
            raise OptionError(f"{opt('keep_patches')} keeps the patch embeddings of a dense run; add {opt('dense')}")
        if self.dense and self.cluster is not None:
            raise OptionError(f"{opt('dense')} runs on this machine, not on a cluster; leave out {opt('cluster')}")
        check_device_name(self.device)
        if self.cluster is not None:
            from rsgeo.cluster.spec import parse_cluster

            parse_cluster(self.cluster)

    def load_encoder(self, default_model: str) -> Encoder:
        """The encoder a run uses: :attr:`encoder`, or the model :attr:`model` names (else ``default_model``)."""
        if self.encoder is not None:
            return self.encoder
        from rsgeo.zoo import load_encoder

        check_device_available(self.device)
        return load_encoder(
            self.model or default_model,
            device=self.device,
            precision=self.precision,
            checkpoint=self.checkpoint,
            cache_dir=self.cache_dir,
            engine=self.engine,
        )
