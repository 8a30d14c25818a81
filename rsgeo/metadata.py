"""A result's metadata, built from the run's objects and read back into them.

The keys and the stored form are the schema's (:mod:`rsgeo.definitions.schema`);
this module fills them from a scene, a grid and an encoder, and turns the
stored grid back into a :class:`~rsgeo.grid.ChipGrid`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rsgeo.definitions import schema
from rsgeo.encoders.base import Encoder
from rsgeo.errors import ResultError
from rsgeo.grid import ChipGrid, ChipSpec
from rsgeo.version import __version__


def grid_record(grid: ChipGrid, gsd: float | None) -> schema.GridRecord:
    """The stored form of ``grid`` (``gsd``: the metres per pixel it was resampled to, if any)."""
    t = list(grid.transform)[:6]
    return schema.GridRecord(
        width=grid.width, height=grid.height, transform=(t[0], t[1], t[2], t[3], t[4], t[5]),
        crs=grid.crs.to_wkt() if grid.crs is not None else None,
        size_px=grid.spec.size_px, stride_px=grid.spec.stride_px, n_rows=grid.n_rows, n_cols=grid.n_cols, gsd=gsd,
    )


def grid_from_record(record: schema.GridRecord) -> ChipGrid:
    """The chip grid a result was made on."""
    from affine import Affine
    from rasterio.crs import CRS

    crs = CRS.from_wkt(record.crs) if record.crs else None
    return ChipGrid(
        record.width, record.height, Affine(*record.transform), ChipSpec(record.size_px, record.stride_px), crs=crs
    )


def grid_from_metadata(meta: Mapping[str, Any]) -> ChipGrid:
    """The chip grid of a result's metadata."""
    return grid_from_record(schema.GridRecord.from_dict(meta[schema.KEY_GRID]))


def embeddings_record(meta: Mapping[str, Any]) -> schema.EmbeddingsRecord:
    """How a result's embeddings are stored."""
    return schema.EmbeddingsRecord.from_dict(meta[schema.KEY_EMBEDDINGS])


def model_metadata(encoder: Encoder, checkpoint: str | None = None) -> dict[str, Any]:
    """The stored description of the model that made the embeddings (and the local ``checkpoint`` it loaded)."""
    return {
        **(
            {schema.MODEL_CHECKPOINT: checkpoint_record(checkpoint, encoder.identity.weights_sha256)}
            if checkpoint else {}
        ),
        "model_id": encoder.identity.model_id,
        "weights_sha256": encoder.identity.weights_sha256,
        "embedding_dim": encoder.embedding_dim,
        "logit_scale": encoder.logit_scale,
        "image_spec": dataclasses.asdict(encoder.image_spec),
        "languages": list(encoder.languages) if encoder.languages else None,
        schema.MODEL_ENGINE: encoder.engine.name,
        schema.MODEL_ENGINE_VERSION: encoder.engine.version,
        schema.MODEL_PRECISION: encoder.engine.precision,
        **(
            {schema.MODEL_CALIBRATION: dataclasses.asdict(encoder.engine.calibration)}
            if encoder.engine.calibration else {}
        ),
    }


def checkpoint_record(path: str, weights_sha256: str | None = None) -> dict[str, Any]:
    """``{path, sha256}`` of a local weights file or folder: the absolute path, and ``weights_sha256`` —
    the SHA-256 the encoder took of the weights file it loaded (every loader hashes the ``--checkpoint``
    file it reads; a folder's is that of the weights file in it, ``rs-m-clip``'s) — or, when not given,
    the file's bytes hashed here."""
    import hashlib

    real = os.path.realpath(os.path.expanduser(path))
    if os.path.isdir(real) or weights_sha256 is not None:
        return {"path": real, "sha256": weights_sha256}
    digest = hashlib.sha256()
    with open(real, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": real, "sha256": digest.hexdigest()}


def run_metadata(command: str | Sequence[str]) -> dict[str, Any]:
    """Who wrote the result, when, with which command (an argv is kept as given, and joined)."""
    import shlex

    argv = None if isinstance(command, str) else [str(a) for a in command]
    return {
        "rsgeo_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(argv) if argv is not None else command,
        **({schema.RUN_ARGV: argv} if argv is not None else {}),
    }


def reading_metadata(bands: Any, stretch: Any, *, min_valid: float, gsd: float | None) -> dict[str, Any]:
    """How the pixels were read (:data:`~rsgeo.definitions.schema.KEY_READ`)."""
    return {
        "bands": list(bands), "stretch": stretch.to_dict(), "min_valid": min_valid, "gsd": gsd,
        schema.READ_ROUNDING: schema.ROUNDING_HALF_EVEN,
    }


def scene_metadata(identity: Mapping[str, Any], dataset: Any) -> dict[str, Any]:
    """The scene's identity (path, fingerprint) and its raster facts, from the open dataset."""
    return {
        **identity,
        "width": dataset.width,
        "height": dataset.height,
        "count": dataset.count,
        "dtypes": list(dataset.dtypes),
        "nodata": dataset.nodata,
        "crs": dataset.crs.to_wkt(),
        "transform": list(dataset.transform)[:6],
    }


def result_metadata(
    *, command: str | Sequence[str], encoder: Encoder, scene: dict[str, Any], grid: dict[str, Any],
    read: dict[str, Any], embedding_dtype: str, checkpoint: str | None = None,
) -> dict[str, Any]:
    """Everything but the layers of a new result's metadata, under the schema's keys."""
    return {
        schema.KEY_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.KEY_RUN: run_metadata(command),
        schema.KEY_MODEL: model_metadata(encoder, checkpoint),
        schema.KEY_SCENE: scene,
        schema.KEY_GRID: grid,
        schema.KEY_READ: read,
        schema.KEY_EMBEDDINGS: schema.EmbeddingsRecord(
            schema.EMBEDDINGS_TABLE, embedding_dtype, encoder.embedding_dim
        ).to_dict(),
    }


def as_stored(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it reads back from JSON (tuples become lists), to compare with stored metadata."""
    out: dict[str, Any] = json.loads(json.dumps(value))
    return out


def stored_model(meta: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The ``model`` record of a result, or :class:`ResultError` naming the file."""
    model = meta.get(schema.KEY_MODEL)
    if not isinstance(model, dict) or "model_id" not in model:
        raise ResultError(f"{name} records no model; it is not a complete rsgeo result (encode the scene again)")
    return model


def recorded_checkpoint(model: Mapping[str, Any], name: str) -> str | None:
    """The local checkpoint a result's ``model`` record names (``None``: none was recorded);
    :class:`ResultError` naming the file when it is gone."""
    from rsgeo.errors import opt

    record = model.get(schema.MODEL_CHECKPOINT)
    if not isinstance(record, dict):
        return None
    path = str(record.get("path") or "")
    if not os.path.exists(path):
        raise ResultError(
            f"{name} was encoded with the checkpoint {path}, which is missing; pass that file (sha256 "
            f"{str(record.get('sha256'))[:12]}…) with {opt('checkpoint')}"
        )
    return path
