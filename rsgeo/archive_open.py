"""An archive held open: every result's embeddings in memory, each new question answered there.

:func:`rsgeo.archive.query_archive` streams every result from its file for each
call (the right thing for one question from the command line, and for archives
larger than memory). A front end that asks many questions of one archive (the
QGIS panel's worker, a notebook) opens it once instead: each result is opened
with :func:`rsgeo.open_result` (checked once, its embeddings read once, float16
tables kept float16) and the text encoder is loaded once; a question then costs
one text encoding and one scan per result, merged into one global top-k by the
same rule as the streamed path (:func:`rsgeo.archive.keep_best`: similarity,
then result order, then tile id).

:meth:`OpenArchive.refresh` lists the inputs again: results added since are
opened, results gone are dropped, a result whose file changed is opened anew.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.archive import Hits, _Best, load_text_encoder, query_specs, text_vectors, write_answer
from rsgeo.collection import Member, open_collection, target_crs
from rsgeo.encoders.base import Encoder
from rsgeo.errors import OptionError
from rsgeo.resultcheck import file_version


class OpenArchive:
    """The results ``inputs`` name (files, patterns, folders), opened for in-memory questions.

    Args:
        inputs: as :func:`rsgeo.archive.query_archive` takes them.
        encoder: the text encoder of the archive's model (default: loaded from
            the first result's record, as ``rsgeo query`` does).
        device: where that encoder runs, when it is loaded here.
        checkpoint: local weights for it, instead of the recorded or published ones.
        cache_dir: where downloaded weights are kept.
    """

    def __init__(self, inputs: Sequence[str | os.PathLike[str]], *, encoder: Encoder | None = None,
                 device: str | None = None, checkpoint: str | None = None, cache_dir: str | None = None) -> None:
        self.inputs = [str(i) for i in inputs]
        self._encoder = encoder
        self._load = {"device": device, "checkpoint": checkpoint, "cache_dir": cache_dir}
        self._open: dict[Path, tuple[Any, Any]] = {}
        self.members: list[Member] = []
        self.refresh()

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_text_encoder(self.members[0], **self._load)
        return self._encoder

    def refresh(self) -> None:
        """List the inputs again; open what is new or changed, drop what is gone (one model, as always)."""
        import rsgeo

        members = open_collection(self.inputs)
        model = members[0].model.get("model_id")
        if self._encoder is not None and self._encoder.identity.model_id != model:
            raise OptionError(f"the archive's results are now made by {model!r}, not by the encoder it was opened "
                              f"with ({self._encoder.identity.model_id!r}); open it again")
        kept: dict[Path, tuple[Any, Any]] = {}
        for m in members:
            key = m.path.resolve()
            ident = file_version(m.path)
            held = self._open.get(key)
            if held is not None and held[0] == ident:
                kept[key] = held
                continue
            if held is not None:
                held[1].close()
            result = rsgeo.open_result(m.path, encoder=self._encoder)
            len(result.index)  # read the embeddings now, not on the first question
            kept[key] = (ident, result)
        for key, (_, result) in self._open.items():
            if key not in kept:
                result.close()
        self._open, self.members = kept, members

    def search(self, texts: Sequence[str], *, top_k: int | None = None, threshold: float | None = None) -> list[Hits]:
        """The best tiles of the whole archive for each text (the streamed path's answer, from memory)."""
        specs = query_specs(texts, top_k=top_k, threshold=threshold)
        vectors = text_vectors(self.encoder, specs)
        results = [self._open[m.path.resolve()][1] for m in self.members]
        out = []
        for spec, vector in zip(specs, vectors):
            best = _Best(spec)
            v = np.asarray(vector, np.float32)
            for index, result in enumerate(results):
                rows, sims = result.index.top_k(v, spec.top_k, spec.threshold)
                best.add(index, result.index.tile_ids[rows], sims.astype(np.float32, copy=False))
            out.append(best.hits())
        return out

    def query(self, texts: Sequence[str], output: str | os.PathLike[str], *, top_k: int | None = None,
              threshold: float | None = None, crs: Any = None, overwrite: bool = False) -> Path:
        """:meth:`search`, written as :func:`rsgeo.archive.query_archive` writes its answer."""
        from rsgeo.archive import check_answer_output

        out = Path(output)
        if out.resolve() in self._open:
            raise OptionError(f"{out} is one of the archive's results; write the answer to another file")
        check_answer_output(out, self.members, overwrite=overwrite)
        return write_answer(out, self.members, self.search(texts, top_k=top_k, threshold=threshold),
                            target_crs(self.members, crs))

    def close(self) -> None:
        for _, result in self._open.values():
            result.close()
        self._open = {}
