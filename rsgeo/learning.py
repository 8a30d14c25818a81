"""Better answers from a stored result without new weights: ``refine``, and learning from labels.

Three answers, all from the stored embeddings (no pixel is read, no image
encoder runs; docs/refine.md):

* :func:`refine` — transductive refinement of a land-cover layer
  (:mod:`rsgeo.transductive`); needs no model at all.
* :func:`classify_with_labels` — a linear probe on the analyst's labels,
  pulled toward the zero-shot text classifier (:mod:`rsgeo.probe`), with a
  cross-validated accuracy on the labels.
* :func:`query_with_labels` — a search refitted on yes/no labels
  (:mod:`rsgeo.feedback`).

Each writes its layers through :func:`rsgeo.pipeline.write_stored_plans`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import (
    LayerPlan,
    QuerySpec,
    labels_plan,
    query_layer_name,
    query_plan,
    scored_landcover_plan,
)
from rsgeo.definitions import schema
from rsgeo.errors import OptionError, ResultError, opt
from rsgeo.feedback import SearchSession, split_yes_no
from rsgeo.labels import Labels, read_labels
from rsgeo.options import RunOptions
from rsgeo.pipeline import write_stored_plans
from rsgeo.probe import DEFAULT_REG, cross_validated_accuracy, fit_probe
from rsgeo.questions import ClassChoice, check_layer_name, class_embeddings
from rsgeo.results import Result, open_result
from rsgeo.store import GpkgEmbeddings
from rsgeo.transductive import Refined, RefineParams, refine_scores

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class LabelSource:
    """Where labels come from: a vector file (``path``, ``field``, ``layer``)."""

    path: PathLike
    field: str
    layer: str | None = None

    def read(self, result: Result) -> Labels:
        return read_labels(self.path, result.grid, field=self.field, layer=self.layer, stored=result.index.tile_ids)


@dataclass
class Report:
    """What a command did, for its output line and the layer's metadata."""

    output: Path
    layer: str
    meta: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


# -- refine ---------------------------------------------------------------------------------


def refine(result: PathLike, layer: str = schema.LANDCOVER_LAYER, output: PathLike | None = None, *,
           new_layer: str | None = None, params: RefineParams = RefineParams(), overwrite: bool = False) -> Report:
    """Refine land-cover layer ``layer`` of a result into ``new_layer`` (default ``<layer>_refined``).

    Transductive (RS-TransCLIP): a Gaussian mixture over the stored embeddings,
    started from the zero-shot scores, with neighbouring chips pulled to agree.
    No model is loaded and no pixel is read (docs/refine.md).

    Args:
        result: a result GeoPackage with the land-cover layer.
        layer: the land-cover layer to refine.
        output: where to write; ``None`` adds the layer to ``result``.
        new_layer: name of the refined layer.
        params: the refinement's parameters.
        overwrite: replace ``output`` if it exists.

    Returns:
        The report: the file written, the layer, its metadata and a one-line summary.
    """
    res = open_result(result)
    name = check_layer_name(new_layer or layer + schema.REFINED_SUFFIX)
    classes, columns = _landcover_layer(res, layer)
    ids, probs = _layer_scores(res, layer, columns)
    rows = _rows_of(res, ids)
    x = res.index.embeddings[rows]
    refined: Refined = refine_scores(x, probs, params)
    meta = {
        schema.LAYER_KEY_METHOD: "rs-transclip", schema.LAYER_KEY_SOURCE_LAYER: layer,
        "refine": refined.meta(classes), "changed_fraction": round(float(np.mean(refined.scores.argmax(1) != probs.argmax(1))), 6),
    }
    plan = scored_landcover_plan(res.grid, name=name, tile_ids=ids, valid_fraction=res.index.valid_fraction[rows]
                                 if res.index.valid_fraction is not None else np.ones(len(ids), np.float32),
                                 class_names=classes, scores=refined.scores, meta=meta)
    out = write_stored_plans(res.path, output, [plan], overwrite=overwrite)
    removed = refined.meta(classes)["removed_classes"]
    summary = (f"layer {name}: {meta['changed_fraction']:.1%} of {len(ids)} chips changed class"
               + (f"; absent: {', '.join(removed)}" if removed else ""))
    return Report(out, name, meta, summary)


def _landcover_layer(res: Result, layer: str) -> tuple[list[str], list[str]]:
    layers = res.metadata.get(schema.KEY_LAYERS, {})
    landcover = [n for n, m in layers.items() if isinstance(m, dict) and m.get("kind") == schema.KIND_LANDCOVER]
    if layer not in layers or layer not in landcover:
        raise OptionError(
            f"{res.path.name} has no land-cover layer {layer!r} ({opt('layer')}); "
            + (f"its land-cover layers are {', '.join(landcover)}" if landcover else "run `rsgeo classify` on it first")
        )
    meta = layers[layer]
    classes = [str(c) for c in meta.get("classes", [])]
    col_of = meta.get("columns", {})
    return classes, [str(col_of.get(c, c)) for c in classes]


def _layer_scores(res: Result, layer: str, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    import pyogrio

    frame = pyogrio.read_dataframe(res.path, layer=layer, columns=[schema.COL_TILE_ID, *columns], read_geometry=False)
    frame = frame.sort_values(schema.COL_TILE_ID)
    ids = frame[schema.COL_TILE_ID].to_numpy(np.int64)
    probs = np.array(frame[columns].to_numpy(np.float32), copy=True)
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    return ids, probs


def _rows_of(res: Result, ids: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(res.index.tile_ids, ids)
    pos = np.minimum(pos, max(len(res.index.tile_ids) - 1, 0))
    if len(ids) and not np.array_equal(res.index.tile_ids[pos], ids):
        raise ResultError(f"{res.path.name}: the layer's tiles have no stored embeddings; encode the scene again")
    return pos


# -- classify from labels -------------------------------------------------------------------


def classify_with_labels(result: PathLike, labels: LabelSource | Labels, output: PathLike | None = None, *,
                         classes: Sequence[str] | None = None, class_set: str | None = None,
                         templates: Sequence[str] | None = None, lang: str | None = None,
                         layer: str = schema.PROBE_LAYER, reg: float = DEFAULT_REG, save_labels: str | None = None,
                         options: RunOptions = RunOptions()) -> Report:
    """A land-cover layer from a probe fitted on ``labels`` (values = class names), pulled toward the text classifier."""
    res = _open_with_encoder(result, options)
    check_layer_name(layer)
    got = labels.read(res) if isinstance(labels, LabelSource) else labels
    if classes is None and class_set is None:
        classes = got.classes
    choice = ClassChoice(classes=tuple(classes) if classes is not None else None, class_set=class_set,
                         templates=tuple(templates) if templates is not None else None, lang=lang)
    names = choice.names
    unknown = sorted(set(got.values) - set(names))
    if unknown:
        raise OptionError(f"labels {', '.join(map(repr, unknown[:5]))} of {got.source} are not among the classes "
                          f"({', '.join(names[:10])}); label with the class names, or leave out {opt('classes')}")
    if len(set(got.values)) < 2:
        raise OptionError(f"the labels of {got.source} hold one class only ({got.values[0]!r}); label at least two classes")
    resolved = class_embeddings(res.encoder, choice)
    scale = float(res.encoder.logit_scale)
    index = {n: i for i, n in enumerate(names)}
    y = np.asarray([index[v] for v in got.values], np.int64)
    x = res.index.rows(got.tile_ids.tolist())
    cv = cross_validated_accuracy(x, y, resolved.embeddings, scale=scale, reg=reg)
    probe = fit_probe(x, y, resolved.embeddings, scale=scale, reg=reg)
    emb = res.index.embeddings
    scores = np.concatenate([probe.probabilities(emb[s : s + 65536].astype(np.float32)) for s in range(0, len(emb), 65536)]) \
        if len(emb) else np.zeros((0, len(names)), np.float32)
    counts = {n: int(np.sum(y == i)) for i, n in enumerate(names)}
    meta: dict[str, Any] = {
        schema.LAYER_KEY_METHOD: "linear-probe", "reg": reg, "logit_scale": scale, "prompts": resolved.prompts,
        "labels": {"source": got.source, "count": len(got), "per_class": counts},
        schema.LAYER_KEY_CV_ACCURACY: None if cv is None else round(cv[0], 6), "cv_folds": None if cv is None else cv[1],
        "zero_shot_accuracy_on_labels": round(float(np.mean(np.argmax(x @ resolved.embeddings.T, axis=1) == y)), 6),
    }
    plans = [scored_landcover_plan(res.grid, name=layer, tile_ids=res.index.tile_ids,
                                   valid_fraction=_fractions(res), class_names=names, scores=scores.astype(np.float32),
                                   meta=meta, colours=resolved.colours)]
    if save_labels:
        plans.append(labels_plan(res.grid, name=check_layer_name(save_labels), tile_ids=got.tile_ids, values=got.values,
                                 meta={"source": got.source}))
    out = write_stored_plans(res.path, output, plans, overwrite=options.overwrite)
    cv_text = (f"cross-validated accuracy {cv[0]:.1%} on {len(got)} labels ({cv[1]}-fold)" if cv is not None
               else f"no cross-validation ({len(got)} labels; a class has only one)")
    summary = f"layer {layer}: {cv_text}; zero-shot on the same labels {meta['zero_shot_accuracy_on_labels']:.1%}"
    return Report(out, layer, meta, summary)


def _open_with_encoder(result: PathLike, options: RunOptions) -> Result:
    """The result with the text side of its own model (a different model is refused by :attr:`Result.encoder`)."""
    model_id = open_result(result).model_id
    res = open_result(result, encoder=options.load_encoder(model_id))
    res.encoder  # noqa: B018 - checks the model is the one that made the embeddings
    return res


def _fractions(res: Result) -> np.ndarray:
    vf = res.index.valid_fraction
    return vf if vf is not None else np.ones(len(res.index), np.float32)


# -- search from labels ---------------------------------------------------------------------


def query_with_labels(result: PathLike, *, texts: Sequence[str] = (), labels: LabelSource | Labels | None = None,
                      like_tiles: Sequence[int] = (), unlike_tiles: Sequence[int] = (), top_k: int | None = None,
                      threshold: float | None = None, layer: str | None = None, reg: float = DEFAULT_REG,
                      save_labels: str | None = None, output: PathLike | None = None,
                      options: RunOptions = RunOptions()) -> Report:
    """A query layer ranked by a yes/no probe on the labels (and example tiles), pulled toward the texts."""
    res = _open_with_encoder(result, options)
    yes: list[int] = list(like_tiles)
    no: list[int] = list(unlike_tiles)
    source = "example tiles"
    if labels is not None:
        got = labels.read(res) if isinstance(labels, LabelSource) else labels
        y, n = split_yes_no(got.tile_ids.tolist(), got.as_yes_no())
        yes, no, source = yes + y, no + n, got.source
    spec = QuerySpec(tuple(texts), tuple(sorted(set(yes))), tuple(sorted(set(no))), top_k=top_k, threshold=threshold,
                     name=layer)
    prior = None
    if texts:
        t = res.text_embeddings(list(texts)).mean(axis=0)
        prior = t / max(float(np.linalg.norm(t)), 1e-12)
    session = SearchSession(res.index, prior, scale=float(res.encoder.logit_scale), reg=reg)
    session.label(yes, True)
    session.label(no, False)
    vector = session.refit()
    taken = res.layers
    if layer is None:  # named by the texts (the labels' tile ids are in the metadata)
        layer = query_layer_name(QuerySpec(tuple(texts)), taken) + "_refit" if texts else "query_labels"
    name = check_layer_name(layer)
    emb = res.metadata[schema.KEY_EMBEDDINGS]
    store = GpkgEmbeddings(res.path, dim=int(emb["dim"]), dtype=str(emb["dtype"]))
    try:
        meta = {"query": spec.label(), schema.LAYER_KEY_METHOD: "label-and-refine", "reg": reg,
                "labels": {"source": source, "yes": len(session.yes), "no": len(session.no)}}
        plans: list[LayerPlan] = [query_plan(res.grid, store, name=name, spec=spec, vector=vector, meta=meta)]
        if save_labels:
            ids, values = session.labels()
            plans.append(labels_plan(res.grid, name=check_layer_name(save_labels), tile_ids=np.asarray(ids, np.int64),
                                     values=values, meta={"source": source, "query": spec.label()}))
        out = write_stored_plans(res.path, output, plans, overwrite=options.overwrite)
    finally:
        store.close()
    summary = f"layer {name}: refitted on {len(session.yes)} yes and {len(session.no)} no labels"
    return Report(out, name, meta, summary)
