"""The rsgeo search panel: ask new questions of an encoded scene, interactively.

Open a result GeoPackage (from Embed scene or any rsgeo run), type what you
look for, and a similarity layer over the tiles appears and updates with each
query; the top-k list zooms to a tile on click; tiles picked on the map become
examples ("more like this" / "less like this"); with "learn from my clicks"
they are yes/no labels instead: a probe is refitted on them and every tile
re-ranked (the worker's ``search``), the best unlabelled tiles are listed to
judge next (the hard-negative round: mark the wrong ones "no"), and the labels
are saved to or loaded from a GeoPackage layer. The class-set box switches
the land-cover layer. Answers come from a long-lived worker that keeps the
embeddings in memory and the text encoder loaded. Results of more than
``search_map.MAP_TILES`` tiles are answered as a similarity raster the worker
writes, plus the top tiles, so that no tile is copied into QGIS's memory; their land cover
comes as a paletted class raster the same way. A folder of results is an
archive: each query is put to every result at once and the best tiles of the whole
archive come back as one small layer with the scene of each tile (archive_answers).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from qgis.core import QgsCoordinateTransform, QgsFeatureRequest, QgsProject, QgsVectorLayer
from qgis.gui import QgsDockWidget, QgsFileWidget
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSpinBox,
    QCheckBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import settings as plugin_settings
from .archive_answers import ArchiveAnswers
from .backend import Backend, BackendError, find_backend
from .layers import open_result_layer
from .map_tools import PointPickTool, TilePickTool
from .definitions.colours import LAYER_OPACITY
from .definitions.schema import KEY_EMBEDDINGS, KEY_RASTERS, KIND_LANDCOVER, RASTER_NAME_SUFFIXES, RASTER_TOP_CLASS
from .resultfile import NotAResultError, check_result, feature_layers, layer_records
from .search_layers import TileLayer, landcover_renderer, similarity_renderer
from .search_map import MAP_TILES, ResultGrid, SimilarityMap
from .worker_client import WorkerClient, decode_array

#: A land-cover layer's class raster is named ``<layer>`` + this (``landcover_class``).
RASTER_CLASS_SUFFIX = RASTER_NAME_SUFFIXES[RASTER_TOP_CLASS]
#: Combo-box data: "layer:NAME" (stored layer), "set:NAME" (class set) or this (typed classes).
CUSTOM = "custom:"
#: The similarity layer lets the scene show through.
#: The panel's layers are as transparent as the stored styles' symbols.
SEARCH_OPACITY = LAYER_OPACITY


def tr(text: str) -> str:
    return QCoreApplication.translate("rsgeo", text)


class RsgeoDock(QgsDockWidget):
    """The search panel (see the module docstring)."""

    #: Emitted with a summary dict after each answered query (tests and scripting).
    answered = pyqtSignal(dict)
    #: Emitted with a summary dict after each land-cover answer.
    classified = pyqtSignal(dict)
    #: Emitted with an error message when a request fails.
    failed = pyqtSignal(str)
    #: Emitted with the worker's reply after labels are saved (``path``, ``layer``, ``count``) or loaded.
    labels_done = pyqtSignal(dict)
    #: (opening number, Backend or BackendError), from the lookup thread to the main thread.
    _backend_found = pyqtSignal(int, object)

    def __init__(self, iface: Any, parent: QWidget | None = None) -> None:
        super().__init__(tr("rsgeo search"), parent)
        self.setObjectName("RsgeoSearchDock")
        self.iface = iface
        self.path: str | None = None
        self.client: WorkerClient | None = None
        self.search: TileLayer | None = None
        self.landcover: TileLayer | None = None
        self.like: list[int] = []
        self.unlike: list[int] = []
        self.ranked: list[tuple[int, float]] = []
        #: With "learn from my clicks": the best-ranked tiles not labelled yet (to judge next).
        self.candidates: list[int] = []
        self.pick_tool: TilePickTool | PointPickTool | None = None
        self._opening = 0
        self._backend_found.connect(self._start_worker, Qt.ConnectionType.QueuedConnection)
        #: Set for results answered as rasters (more than MAP_TILES tiles); then ``search`` stays None.
        self.map: SimilarityMap | None = None
        #: With ``map``: the land-cover answers, as class rasters.
        self.landcover_map: SimilarityMap | None = None
        #: The open result's rasters (metadata ``rasters``): stored class rasters are shown from them.
        self._rasters: dict[str, Any] = {}
        self.grid: ResultGrid | None = None
        #: The open result's model (the settings' checkpoint goes with the default model only).
        self._result_model: str | None = None
        #: Centres (result CRS) of the listed tiles of the last map answer.
        self.centres: dict[int, tuple[float, float]] = {}
        #: Set when a folder of results is open (an archive): then path is the folder.
        self.archive: ArchiveAnswers | None = None
        self._build_ui()
        QgsProject.instance().layerWillBeRemoved.connect(self._layer_removed)

    # -- UI ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        s = plugin_settings.load()
        body = QWidget(self)
        root = QVBoxLayout(body)

        self.file = QgsFileWidget(body)
        self.file.setFilter(tr("rsgeo GeoPackage (*.gpkg)"))
        self.file.fileChanged.connect(lambda p: self.open_result(p) if p else None)
        from_layer = QToolButton(body)
        from_layer.setText(tr("Active layer"))
        from_layer.setToolTip(tr("Use the GeoPackage of the active layer"))
        from_layer.clicked.connect(self._from_active_layer)
        folder = QToolButton(body)
        folder.setText(tr("Folder…"))
        folder.setToolTip(tr("Search a folder of rsgeo results at once (an archive of scenes)"))
        folder.clicked.connect(self._choose_archive)
        row = QHBoxLayout()
        row.addWidget(self.file, 1)
        row.addWidget(from_layer)
        row.addWidget(folder)
        root.addLayout(row)
        self.status = QLabel(tr("Open a GeoPackage written by rsgeo (Embed scene)."), body)
        self.status.setWordWrap(True)
        root.addWidget(self.status)

        ask = QGroupBox(tr("Search"), body)
        form = QFormLayout(ask)
        self.query = QLineEdit(ask)
        self.query.setPlaceholderText(tr("e.g. solar farm, greenhouses, estufas, 温室 …"))
        self.query.returnPressed.connect(self.ask)
        self.search_button = QPushButton(tr("Search"), ask)
        self.search_button.clicked.connect(self.ask)
        qrow = QHBoxLayout()
        qrow.addWidget(self.query, 1)
        qrow.addWidget(self.search_button)
        form.addRow(qrow)
        self.top_k = QSpinBox(ask)
        self.top_k.setRange(1, 10000)
        self.top_k.setValue(s.top_k)
        self.top_k.valueChanged.connect(self._top_k_changed)
        self.only_top = QCheckBox(tr("only these on the map"), ask)
        self.only_top.toggled.connect(self._apply_filter)
        krow = QHBoxLayout()
        krow.addWidget(self.top_k)
        krow.addWidget(self.only_top, 1)
        form.addRow(tr("Top"), krow)
        self.pick = QToolButton(ask)
        self.pick.setText(tr("Pick examples on map"))
        self.pick.setToolTip(tr("Left click: more like this tile. Right click: less like this."))
        self.pick.setCheckable(True)
        self.pick.toggled.connect(self._toggle_pick)
        clear = QToolButton(ask)
        clear.setText(tr("Clear"))
        clear.clicked.connect(self.clear_examples)
        self.examples = QLabel(tr("no examples"), ask)
        erow = QHBoxLayout()
        erow.addWidget(self.pick)
        erow.addWidget(clear)
        erow.addWidget(self.examples, 1)
        form.addRow(erow)
        self.learn = QCheckBox(tr("learn from my clicks"), ask)
        self.learn.setToolTip(tr(
            "Picked tiles are yes (left click) / no (right click) labels: a classifier is refitted on them "
            "and every tile re-ranked. The list then shows the best tiles not labelled yet: mark the wrong "
            "ones no (right click in the list) and the next round learns from them."))
        self.learn.toggled.connect(lambda _on: self.ask() if (self.like or self.unlike) else None)
        save = QToolButton(ask)
        save.setText(tr("Save labels…"))
        save.setToolTip(tr("Write the yes/no labels as a layer of the result (tile_id, label)"))
        save.clicked.connect(self._save_labels_clicked)
        load = QToolButton(ask)
        load.setText(tr("Load labels…"))
        load.setToolTip(tr("Read yes/no labels from a vector file or a saved labels layer"))
        load.clicked.connect(self._load_labels_clicked)
        self.label_buttons = (save, load)
        lrow = QHBoxLayout()
        lrow.addWidget(self.learn, 1)
        lrow.addWidget(save)
        lrow.addWidget(load)
        form.addRow(lrow)
        self.results = QListWidget(ask)
        self.results.itemClicked.connect(self._zoom_to_item)
        self.results.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.results.customContextMenuRequested.connect(self._results_menu)
        form.addRow(self.results)
        root.addWidget(ask, 1)

        lc = QGroupBox(tr("Land cover"), body)
        lform = QFormLayout(lc)
        self.class_sets = QComboBox(lc)
        self.class_sets.currentIndexChanged.connect(self._class_choice_changed)
        lform.addRow(tr("Classes"), self.class_sets)
        self.classes = QLineEdit(lc)
        self.classes.setPlaceholderText(tr("water, forest, urban area, cropland"))
        self.classes.returnPressed.connect(self.classify)
        lform.addRow(self.classes)
        self.classify_button = QPushButton(tr("Show land cover"), lc)
        self.classify_button.clicked.connect(self.classify)
        lform.addRow(self.classify_button)
        root.addWidget(lc)

        settings_button = QPushButton(tr("Settings…"), body)
        settings_button.clicked.connect(self._settings)
        root.addWidget(settings_button)
        self.setWidget(body)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.query, self.search_button, self.pick, self.classify_button, self.class_sets, self.classes,
                  self.learn, *self.label_buttons):
            w.setEnabled(on)
        if self.archive is not None:  # an archive: text queries only, over every result
            for w in (self.only_top, self.pick, self.learn, *self.label_buttons, self.classify_button,
                      self.class_sets, self.classes):
                w.setEnabled(False)
        elif self.map is not None:  # a raster answer: no tiles to hide, no learning (land cover comes as a raster)
            for w in (self.only_top, self.learn, *self.label_buttons):
                w.setEnabled(False)
        else:
            self.only_top.setEnabled(True)

    def _say(self, text: str) -> None:
        # Long paths wrap at their slashes (a zero-width space after each); the tooltip keeps the text whole.
        self.status.setText(text.replace("/", "/\u200b"))
        self.status.setToolTip(text)

    # -- opening a result -------------------------------------------------------------------
    def open_result(self, path: str) -> bool:
        """Open ``path`` in the panel: tile layers, worker, class choices."""
        try:
            meta = check_result(path)
        except NotAResultError as exc:
            self._say(str(exc))
            return False
        if KEY_EMBEDDINGS not in meta:
            self._say(tr("{} holds no embeddings; run Embed scene on the scene first.").format(Path(path).name))
            return False
        self.close_result()
        self.path = str(Path(path).resolve())
        if self.file.filePath() != path:
            self.file.blockSignals(True)
            self.file.setFilePath(path)
            self.file.blockSignals(False)
        self.grid = ResultGrid.from_metadata(meta)
        self._result_model = (meta.get("model") or {}).get("model_id")
        if self.grid is not None and self.grid.tiles > MAP_TILES:
            self.map = SimilarityMap(SEARCH_OPACITY)  # no tile layer: answers come as rasters
            self.landcover_map = SimilarityMap(SEARCH_OPACITY, palette=True)
        else:
            self.search = self._new_search_layer(tr("rsgeo search ({})").format(Path(path).stem))
        raw = meta.get(KEY_RASTERS)
        self._rasters = raw if isinstance(raw, dict) else {}
        self._fill_class_choices(meta)
        self._look_for_backend()
        return True

    def open_archive(self, folder: str) -> bool:
        """Open a folder of results: each query then ranks the tiles of all of them at once."""
        if not os.path.isdir(folder):
            self._say(tr("{} is not a folder").format(folder))
            return False
        self.close_result()
        self.archive = ArchiveAnswers(folder)
        self.path = self.archive.folder
        self.class_sets.clear()
        self._look_for_backend()
        return True

    def _choose_archive(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("A folder of rsgeo results"))
        if folder:
            self.open_archive(folder)

    def _look_for_backend(self) -> None:
        # Finding rsgeo starts its Python once (``import rsgeo``: 0.4 s or more): not on the main thread.
        self._opening += 1
        opening, settings = self._opening, plugin_settings.load()

        def lookup() -> None:
            try:
                found: object = find_backend(settings)
            except BackendError as exc:
                found = exc
            self._backend_found.emit(opening, found)

        self._say(tr("Looking for rsgeo…"))
        threading.Thread(target=lookup, name="rsgeo-backend-lookup", daemon=True).start()

    def _start_worker(self, opening: int, found: object) -> None:
        if opening != self._opening or self.path is None:
            return  # closed, or another result opened, meanwhile
        if not isinstance(found, Backend):
            self._say(str(found))
            self.failed.emit(str(found))
            return
        backend = found
        self.client = WorkerClient(backend, self)
        self.client.failed.connect(self._worker_failed)
        self.client.busy.connect(lambda b: self.setCursor(Qt.CursorShape.BusyCursor if b else Qt.CursorShape.ArrowCursor))
        self._say(tr("Starting rsgeo ({})…").format(backend.describe()))
        self.client.start()
        started = time.monotonic()
        s = plugin_settings.load()  # the settings' weights are the default model's
        if self.archive is not None:
            self.client.request("open_archive", lambda ok, r: self._archive_opened(ok, r, started),
                                paths=[self.archive.folder], device=self._device(), cache_dir=s.cache_dir or None)
            return
        own = s.checkpoint if self._result_model == s.model else ""
        self.client.request("open", self._opened, path=self.path, device=self._device(),
                            checkpoint=own or None, cache_dir=s.cache_dir or None)
        self.client.request("warm", lambda ok, r: self._warmed(ok, r, started), path=self.path)
        self.client.request("class_sets", self._got_class_sets)

    def _new_search_layer(self, name: str) -> TileLayer:
        assert self.path is not None
        tiles = TileLayer(self.path, name, [("similarity", "Double"), ("rank", "Int")])
        tiles.layer.setRenderer(similarity_renderer([]))
        tiles.layer.setOpacity(SEARCH_OPACITY)
        if self.pick_tool is not None:
            self.pick_tool.layer = tiles.layer
        return tiles

    def _device(self) -> str | None:
        device = plugin_settings.load().device
        return None if device == "auto" else device

    def _opened(self, ok: bool, result: Any) -> None:
        if not ok:
            self._say(tr("Cannot open: {}").format(result))
            self.failed.emit(str(result))
            return
        self._tiles = int(result.get("tiles", 0))
        self._model = str(result.get("model_id", ""))
        self._say(tr("{} tiles, model {}; loading the text encoder…").format(self._tiles, self._model))

    def _archive_opened(self, ok: bool, result: Any, started: float) -> None:
        if not ok or self.archive is None:
            self._say(tr("Cannot open the folder: {}").format(result))
            self.failed.emit(str(result))
            return
        self._set_enabled(True)
        how = tr(", with its index {}").format(os.path.basename(result["index"])) if result.get("index") else ""
        self._say(tr("Ready: {} results, {} tiles in {}{}, model {} (ready in {:.1f} s). Type a query.").format(
            result["results"], result["tiles"], self.archive.name, how, result["model_id"], time.monotonic() - started))

    def _warmed(self, ok: bool, result: Any, started: float) -> None:
        if not ok:
            self._say(tr("The text encoder did not load: {}").format(result))
            self.failed.emit(str(result))
            return
        self._set_enabled(True)
        self._say(tr("Ready: {} tiles, model {} (ready in {:.1f} s). Type a query.").format(
            getattr(self, "_tiles", "?"), getattr(self, "_model", "?"), time.monotonic() - started))

    def _fill_class_choices(self, meta: dict[str, Any]) -> None:
        self.class_sets.blockSignals(True)
        self.class_sets.clear()
        for rec in layer_records(meta):
            if rec.kind == KIND_LANDCOVER and rec.name in feature_layers(self.path or ""):
                self.class_sets.addItem(tr("stored layer: {}").format(rec.name), f"layer:{rec.name}")
        self.class_sets.addItem(tr("my classes (type below)"), CUSTOM)
        self.class_sets.blockSignals(False)
        self._class_choice_changed()

    def _got_class_sets(self, ok: bool, result: Any) -> None:
        if not ok or not isinstance(result, dict):
            return
        for name in result.get("names", []):
            self.class_sets.addItem(tr("class set: {}").format(name), f"set:{name}")

    def close_result(self, *, wait: bool = False) -> None:
        """Stop the worker (``wait``: until it has exited) and remove the panel's layers."""
        self._opening += 1  # a backend lookup still under way is for nothing now
        if self.pick.isChecked():
            self.pick.setChecked(False)
        if self.client is not None:
            self.client.stop(wait=wait)
            self.client.deleteLater()
            self.client = None
        ids = [tl.layer.id() for tl in (self.search, self.landcover) if tl is not None]
        self.search = self.landcover = None  # before removal: _layer_removed must not rebuild them
        for layer_id in ids:
            if QgsProject.instance().mapLayer(layer_id) is not None:
                QgsProject.instance().removeMapLayer(layer_id)
        if self.map is not None:
            answers, self.map = self.map, None
            answers.close()
        if self.landcover_map is not None:
            classes, self.landcover_map = self.landcover_map, None
            classes.close()
        if self.archive is not None:
            archive, self.archive = self.archive, None
            archive.close()
        self._rasters = {}
        self.grid = None
        self.like, self.unlike, self.ranked, self.centres, self.candidates = [], [], [], {}, []
        self.results.clear()
        self._update_examples()
        self._set_enabled(False)
        self.path = None

    def shutdown(self) -> None:
        self.close_result(wait=True)  # QGIS is unloading the plugin or exiting: leave no process behind
        try:
            QgsProject.instance().layerWillBeRemoved.disconnect(self._layer_removed)
        except TypeError:
            pass

    def _from_active_layer(self) -> None:
        layer = self.iface.activeLayer() if self.iface is not None else None
        if isinstance(layer, QgsVectorLayer) and layer.providerType() == "ogr":
            self.open_result(layer.source().split("|")[0])

    def _layer_removed(self, layer_id: str) -> None:
        # The project deletes removed layers; the next answer goes into a fresh one.
        if self.search is not None and self.search.layer.id() == layer_id:
            self.search = self._new_search_layer(self.search.layer.name()) if self.path else None
        if self.landcover is not None and self.landcover.layer.id() == layer_id:
            self.landcover = None
        if self.map is not None:
            self.map.forget_layer(layer_id)
        if self.landcover_map is not None:
            self.landcover_map.forget_layer(layer_id)
        if self.archive is not None:
            self.archive.forget_layer(layer_id)

    def _worker_failed(self, message: str) -> None:
        self._set_enabled(False)
        self._say(tr("rsgeo worker stopped: {}").format(message))
        self.failed.emit(message)

    # -- queries ----------------------------------------------------------------------------
    def ask(self, text: str | None = None) -> None:
        """Run the query in the box (or ``text``) combined with the picked examples."""
        if text is not None and not isinstance(text, bool):
            self.query.setText(text)
        words = self.query.text().strip()
        if self.client is None or self.path is None:
            return
        if not words and not self.like:
            self._say(tr("Type a query or pick example tiles."))
            return
        label = self._label(words)
        asked_at = time.monotonic()
        if self.archive is not None:
            if not words:
                self._say(tr("Type a query: an archive is searched by text."))
                return
            self.client.request("archive_query", lambda ok, r: self._answered_archive(ok, r, label, asked_at),
                                replace="query", paths=[self.archive.folder], text=[words],
                                top_k=self.top_k.value(), output=self.archive.next_output())
            self._say(tr("Searching {}…").format(self.archive.name))
            return
        if self.learning:
            self.client.request("search", lambda ok, r: self._answered(ok, r, label, asked_at), replace="query",
                                path=self.path, text=[words] if words else [], yes=list(self.like),
                                no=list(self.unlike), candidates=self.top_k.value())
            self._say(tr("Refitting on {} yes, {} no…").format(len(self.like), len(self.unlike)))
            return
        if self.map is not None:
            self.client.request("query", lambda ok, r: self._answered_map(ok, r, label, asked_at), replace="query",
                                path=self.path, text=[words] if words else [], like_tiles=list(self.like),
                                unlike_tiles=list(self.unlike), raster=self.map.next_path(), top_k=self.top_k.value())
            self._say(tr("Searching…"))
            return
        self.client.request("query", lambda ok, r: self._answered(ok, r, label, asked_at), replace="query",
                            path=self.path, text=[words] if words else [], like_tiles=list(self.like),
                            unlike_tiles=list(self.unlike))
        self._say(tr("Searching…"))

    def _answered(self, ok: bool, result: Any, label: str, asked_at: float) -> None:
        if not ok or self.search is None:
            self._say(tr("Query failed: {}").format(result))
            self.failed.emit(str(result))
            return
        ids = decode_array(result["tile_id"], "int64")
        sims = decode_array(result["similarity"], "float32")
        self.ranked = list(zip(ids, sims))
        learned = "candidates" in result
        self.candidates = [int(t) for t in decode_array(result["candidates"], "int64")] if learned else []
        layer = self._ensure_in_project(self.search)
        self.search.set_values(ids, {"similarity": sims, "rank": list(range(1, len(ids) + 1))})
        layer.setRenderer(similarity_renderer(sims))
        layer.setName(tr("rsgeo: {}").format(label))
        self._apply_filter()
        layer.triggerRepaint()
        self._refresh_legend(layer)
        self._show_ranked()
        seconds = time.monotonic() - asked_at
        summary: dict[str, Any] = {"query": label, "tiles": len(ids), "seconds": seconds,
                                   "top": self.ranked[: self.top_k.value()]}
        if learned:
            summary.update(refit_seconds=float(result.get("seconds", 0.0)), candidates=list(self.candidates),
                           yes=int(result.get("yes", 0)), no=int(result.get("no", 0)))
            self._say(tr("{}: refitted on {} yes, {} no; {} tiles re-ranked in {:.2f} s").format(
                label, summary["yes"], summary["no"], len(ids), seconds))
        else:
            self._say(tr("{}: {} tiles ranked in {:.2f} s").format(label, len(ids), seconds))
        self.answered.emit(summary)

    def _answered_archive(self, ok: bool, result: Any, label: str, asked_at: float) -> None:
        if not ok or self.archive is None:
            self._say(tr("Query failed: {}").format(result))
            self.failed.emit(str(result))
            return
        layers = list(result.get("layers") or [])
        if not layers:
            self._say(tr("Query failed: the answer has no layer"))
            self.failed.emit("the answer has no layer")
            return
        layer = self.archive.show(str(result["output"]), layers[0], tr("rsgeo: {} ({})").format(label, self.archive.name))
        self._refresh_legend(layer)
        self.ranked = [(h.tile_id, h.similarity) for h in self.archive.hits]
        self._show_ranked()
        seconds = time.monotonic() - asked_at
        scenes = sorted({h.scene for h in self.archive.hits})
        self._say(tr("{}: the best {} tiles of {} in {:.2f} s, from {} scenes").format(
            label, len(self.archive.hits), self.archive.name, seconds, len(scenes)))
        self.answered.emit({"query": label, "tiles": len(self.archive.hits), "seconds": seconds,
                            "worker_seconds": float(result.get("seconds", 0.0)), "scenes": scenes,
                            "top": [(h.scene, h.tile_id, h.similarity) for h in self.archive.hits],
                            "layer": layer.id()})

    def _answered_map(self, ok: bool, result: Any, label: str, asked_at: float) -> None:
        if not ok or self.map is None:
            self._say(tr("Query failed: {}").format(result))
            self.failed.emit(str(result))
            return
        ids = decode_array(result["tile_id"], "int64")
        sims = decode_array(result["similarity"], "float32")
        xs, ys = decode_array(result["centre_x"], "float64"), decode_array(result["centre_y"], "float64")
        self.ranked = list(zip(ids, sims))
        self.centres = {int(t): (x, y) for t, x, y in zip(ids, xs, ys)}
        self._show_ranked()
        count = int(result.get("count", 0))

        def shown(layer: Any) -> None:
            if layer is None:
                message = tr("QGIS cannot open the answer raster {}").format(result["raster"])
                self._say(message)
                self.failed.emit(message)
                return
            self._refresh_legend(layer)
            seconds = time.monotonic() - asked_at
            self._say(tr("{}: {} tiles ranked in {:.2f} s (shown as a raster)").format(label, count, seconds))
            self.answered.emit({"query": label, "tiles": count, "seconds": seconds, "raster": str(result["raster"]),
                                "top": self.ranked[: self.top_k.value()], "worker_seconds": result.get("seconds", {})})

        self.map.show(str(result["raster"]), tr("rsgeo: {}").format(label), result["breaks"], shown)

    def _top_k_changed(self) -> None:
        partial = self.map is not None or self.archive is not None  # answers holding only the top tiles asked for
        if partial and self.ranked and self.top_k.value() > len(self.ranked) and self.query.isEnabled():
            self.ask()
        else:
            self._show_ranked()

    def _refresh_legend(self, layer: Any) -> None:
        view = getattr(self.iface, "layerTreeView", lambda: None)() if self.iface is not None else None
        if view is not None:
            view.refreshLayerSymbology(layer.id())

    def _label(self, words: str) -> str:
        parts = [words] if words else []
        if self.like:
            parts.append(tr("like {}").format(", ".join(map(str, self.like))))
        if self.unlike:
            parts.append(tr("not {}").format(", ".join(map(str, self.unlike))))
        return " + ".join(parts)

    def _ensure_in_project(self, tile_layer: TileLayer | None) -> QgsVectorLayer:
        assert tile_layer is not None
        project = QgsProject.instance()
        if project.mapLayer(tile_layer.layer.id()) is None:
            project.addMapLayer(tile_layer.layer)
        return tile_layer.layer

    @property
    def learning(self) -> bool:
        """Answers come from the yes/no probe (the box is ticked and there are labels)."""
        return self.learn.isChecked() and self.map is None and bool(self.like or self.unlike)

    def _show_ranked(self) -> None:
        self.results.clear()
        if self.archive is not None:
            for hit in self.archive.hits[: self.top_k.value()]:
                item = QListWidgetItem(tr("{}. {} · tile {} — {:.3f}").format(hit.rank, hit.scene, hit.tile_id,
                                                                            hit.similarity))
                item.setData(Qt.ItemDataRole.UserRole, -1 - hit.fid)  # negative: a feature of the answer layer
                self.results.addItem(item)
            return
        marks = {**{t: " ✓" for t in self.like}, **{t: " ✗" for t in self.unlike}}
        for rank, (tid, sim) in enumerate(self.ranked[: self.top_k.value()], start=1):
            item = QListWidgetItem(tr("{}. tile {} — {:.3f}{}").format(rank, tid, sim, marks.get(int(tid), "")))
            item.setData(Qt.ItemDataRole.UserRole, int(tid))
            self.results.addItem(item)
        self._apply_filter()

    def _results_menu(self, pos: Any) -> None:
        item = self.results.itemAt(pos)
        if item is None or self.client is None or self.archive is not None:
            return
        tid = int(item.data(Qt.ItemDataRole.UserRole))
        menu = QMenu(self.results)
        menu.addAction(tr("Yes: like this tile"), lambda: self.add_example(tid, True))
        menu.addAction(tr("No: not this tile"), lambda: self.add_example(tid, False))
        menu.exec(self.results.mapToGlobal(pos))

    def _apply_filter(self) -> None:
        if self.search is None or self.map is not None:
            return
        subset = f'"rank" <= {self.top_k.value()}' if self.only_top.isChecked() and self.ranked else ""
        if self.search.layer.subsetString() != subset:
            self.search.layer.setSubsetString(subset)

    def _zoom_to_item(self, item: QListWidgetItem) -> None:
        value = int(item.data(Qt.ItemDataRole.UserRole))
        if self.archive is not None:
            self.zoom_to_archive_hit(-1 - value)
            return
        self.zoom_to_tile(value)

    def zoom_to_archive_hit(self, fid: int) -> None:
        """Centre the map on a tile of the archive answer (feature ``fid``) and flash it."""
        found = self.archive.geometry(fid) if self.archive is not None else None
        if found is not None and self.iface is not None:
            self._zoom_to(*found)

    def zoom_to_tile(self, tile_id: int) -> None:
        """Centre the map on a tile (a few tiles around it visible) and flash it."""
        if self.iface is None:
            return
        if self.map is not None and self.grid is not None:
            centre = self.centres.get(int(tile_id))
            if centre is None:
                return
            geom, crs = self.grid.chip_geometry(*centre), self.grid.crs
        else:
            if self.search is None:
                return
            fid = self.search.fid_of.get(tile_id)
            feature = None if fid is None else next(self.search.layer.dataProvider().getFeatures(QgsFeatureRequest(fid)), None)
            if feature is None:
                return
            geom, crs = feature.geometry(), self.search.layer.crs()
        self._zoom_to(geom, crs)

    def _zoom_to(self, geom: Any, crs: Any) -> None:
        canvas = self.iface.mapCanvas()
        dest = canvas.mapSettings().destinationCrs()
        if dest.isValid() and crs.isValid() and dest != crs:
            geom.transform(QgsCoordinateTransform(crs, dest, QgsProject.instance()))
        extent = geom.boundingBox()
        extent.scale(5.0)
        canvas.setExtent(extent)
        canvas.refresh()
        canvas.flashGeometries([geom], dest)

    # -- examples ---------------------------------------------------------------------------
    def _toggle_pick(self, on: bool) -> None:
        if self.iface is None or (self.search is None and self.map is None):
            return
        canvas = self.iface.mapCanvas()
        if on and self.map is not None and self.grid is not None:
            self.pick_tool = PointPickTool(canvas, self.grid.crs)
            self.pick_tool.clicked.connect(self._picked_point)
            self.pick_tool.deactivated.connect(lambda: self.pick.setChecked(False))
            canvas.setMapTool(self.pick_tool)
        elif on and self.search is not None:
            self.pick_tool = TilePickTool(canvas, self.search.layer)
            self.pick_tool.picked.connect(self.add_example)
            self.pick_tool.deactivated.connect(lambda: self.pick.setChecked(False))
            canvas.setMapTool(self.pick_tool)
        elif self.pick_tool is not None:
            if canvas.mapTool() is self.pick_tool:
                canvas.unsetMapTool(self.pick_tool)
            self.pick_tool = None

    def _picked_point(self, x: float, y: float, positive: bool) -> None:
        """A click on a raster answer: the worker finds the tile whose cell holds it."""
        if self.client is None or self.path is None:
            return

        def found(ok: bool, result: Any) -> None:
            if ok and isinstance(result, dict) and result.get("tile_id") is not None:
                self.add_example(int(result["tile_id"]), positive)

        self.client.request("tile_at", found, path=self.path, x=x, y=y)

    def add_example(self, tile_id: int, positive: bool = True) -> None:
        """Add a tile as a positive or negative example and re-run the query."""
        same, other = (self.like, self.unlike) if positive else (self.unlike, self.like)
        if tile_id in other:
            other.remove(tile_id)
        if tile_id not in same:
            same.append(tile_id)
        self._update_examples()
        self.ask()

    def save_labels(self, layer: str = "labels", target: str | None = None) -> None:
        """Write the yes/no labels as ``layer`` of the result (or of ``target``, a copy made if need be)."""
        if self.client is None or self.path is None:
            return
        if not (self.like or self.unlike):
            self._say(tr("No labels to save: pick tiles first."))
            return

        def saved(ok: bool, result: Any) -> None:
            if not ok:
                self._say(tr("Saving the labels failed: {}").format(result))
                self.failed.emit(str(result))
                return
            self._say(tr("{} labels saved as layer {} of {}").format(result["count"], result["layer"], result["path"]))
            self.labels_done.emit(dict(result))

        self.client.request("save_labels", saved, path=self.path, layer=layer, yes=list(self.like),
                            no=list(self.unlike), target=target)

    def load_labels(self, labels: str, field: str = "label", layer: str | None = None) -> None:
        """Take the yes/no labels of a vector file (``field``: yes/no, true/false, 1/0) and answer with them."""
        if self.client is None or self.path is None:
            return

        def loaded(ok: bool, result: Any) -> None:
            if not ok:
                self._say(tr("Loading the labels failed: {}").format(result))
                self.failed.emit(str(result))
                return
            self.like, self.unlike = [int(t) for t in result["yes"]], [int(t) for t in result["no"]]
            self._update_examples()
            self.labels_done.emit(dict(result))
            if self.learn.isChecked() or self.like:
                self.ask()

        self.client.request("load_labels", loaded, path=self.path, labels=labels, field=field, layer=layer)

    def _save_labels_clicked(self) -> None:
        from qgis.PyQt.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, tr("Save labels"), tr("Layer name in the result:"), text="labels")
        if ok and name.strip():
            self.save_labels(name.strip())

    def _load_labels_clicked(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog, QInputDialog

        path, _ = QFileDialog.getOpenFileName(self, tr("Load labels"), str(Path(self.path or "").parent),
                                              tr("Vector files (*.gpkg *.shp *.geojson);;All files (*)"))
        if not path:
            return
        layer, ok = QInputDialog.getText(self, tr("Load labels"), tr("Layer (empty: the first):"),
                                         text="labels" if path == self.path else "")
        if not ok:
            return
        field, ok = QInputDialog.getText(self, tr("Load labels"), tr("Field holding yes/no:"), text="label")
        if ok and field.strip():
            self.load_labels(path, field.strip(), layer.strip() or None)

    def clear_examples(self) -> None:
        """Forget the picked examples; the ranking follows (the query alone, or nothing)."""
        self.like, self.unlike, self.candidates = [], [], []
        self._update_examples()
        if self.query.text().strip():
            self.ask()
            return
        self.ranked = []
        self.results.clear()
        if self.search is not None:
            self.search.set_values([], {"similarity": [], "rank": []})
            self._apply_filter()

    def _update_examples(self) -> None:
        parts = []
        if self.like:
            parts.append(tr("like {}").format(", ".join(map(str, self.like))))
        if self.unlike:
            parts.append(tr("not {}").format(", ".join(map(str, self.unlike))))
        self.examples.setText("; ".join(parts) or tr("no examples"))

    # -- land cover -------------------------------------------------------------------------
    def _class_choice_changed(self) -> None:
        self.classes.setVisible(self.class_sets.currentData() in (None, CUSTOM))

    def classify(self, classes: list[str] | None = None) -> None:
        """Show a stored land-cover layer, or classify with a class set / the typed classes."""
        if self.client is None or self.path is None:
            return
        kind, _, value = str(self.class_sets.currentData() or CUSTOM).partition(":")
        if classes is not None and not isinstance(classes, bool):
            kind = "custom"
            self.classes.setText(", ".join(classes))
        if kind == "layer" and self.landcover_map is not None:
            self._show_stored_class_raster(value)
            return
        if kind == "layer":
            layer = open_result_layer(self.path, value)
            QgsProject.instance().addMapLayer(layer)
            self.classified.emit({"layer": value, "stored": True})
            return
        params: dict[str, Any] = {"path": self.path}
        if kind == "set":
            params["class_set"] = value
            label = value
        else:
            names = [c.strip() for c in self.classes.text().split(",") if c.strip()]
            if len(names) < 2:
                self._say(tr("Type at least two classes, separated by commas."))
                return
            params["classes"] = names
            label = ", ".join(names)
        asked_at = time.monotonic()
        if self.landcover_map is not None:  # a large result: the answer is a class raster
            self.client.request("classify", lambda ok, r: self._classified_map(ok, r, label, asked_at),
                                replace="classify", raster=self.landcover_map.next_path(), **params)
            self._say(tr("Classifying…"))
            return
        self.client.request("classify", lambda ok, r: self._classified(ok, r, label, asked_at), replace="classify",
                            **params)
        self._say(tr("Classifying…"))

    def _show_stored_class_raster(self, layer: str) -> None:
        """A stored land-cover layer of a large result: its class raster, never its tiles."""
        assert self.landcover_map is not None and self.path is not None
        record = self._rasters.get(layer + RASTER_CLASS_SUFFIX)
        path = Path(self.path).parent / record["path"] if isinstance(record, dict) and "path" in record else None
        if path is None or not path.is_file():
            self._say(tr("{} has no class raster to show; choose a class set or type classes "
                         "(answered as a raster), or run Classify land cover.").format(layer))
            return
        asked_at = time.monotonic()

        def shown(lyr: Any) -> None:
            if lyr is None:
                self._say(tr("QGIS cannot open the class raster {}").format(path))
                self.failed.emit(str(path))
                return
            self._refresh_legend(lyr)
            seconds = time.monotonic() - asked_at
            self._say(tr("Land cover: the stored layer {} (as a raster)").format(layer))
            self.classified.emit({"layer": layer, "stored": True, "raster": str(path), "seconds": seconds})

        self.landcover_map.show(str(path), tr("rsgeo land cover: {}").format(layer), [], shown, own=False)

    def _classified_map(self, ok: bool, result: Any, label: str, asked_at: float) -> None:
        if not ok or self.landcover_map is None:
            self._say(tr("Land cover failed: {}").format(result))
            self.failed.emit(str(result))
            return
        names = [str(n) for n in result["classes"]]

        def shown(layer: Any) -> None:
            if layer is None:
                message = tr("QGIS cannot open the land-cover raster {}").format(result["raster"])
                self._say(message)
                self.failed.emit(message)
                return
            self._refresh_legend(layer)
            seconds = time.monotonic() - asked_at
            self._say(tr("Land cover ({} classes) of {} tiles in {:.2f} s (shown as a raster)").format(
                len(names), result.get("count", 0), seconds))
            self.classified.emit({"classes": names, "tiles": int(result.get("count", 0)), "seconds": seconds,
                                  "raster": str(result["raster"]), "counts": list(result.get("counts", [])),
                                  "worker_seconds": result.get("seconds", {})})

        self.landcover_map.show(str(result["raster"]), tr("rsgeo land cover: {}").format(label), [], shown)

    def _classified(self, ok: bool, result: Any, label: str, asked_at: float) -> None:
        if not ok:
            self._say(tr("Land cover failed: {}").format(result))
            self.failed.emit(str(result))
            return
        names = [str(n) for n in result["classes"]]
        ids = decode_array(result["tile_id"], "int64")
        top = [names[i] for i in decode_array(result["top"], "int32")]
        scores = decode_array(result["top_score"], "float32")
        if self.path is None:  # the panel was closed meanwhile
            return
        if self.landcover is None:
            self.landcover = TileLayer(self.path, "land cover", [("top_class", "String"), ("top_score", "Double")])
        layer = self._ensure_in_project(self.landcover)
        self.landcover.set_values(ids, {"top_class": top, "top_score": scores})
        layer.setRenderer(landcover_renderer(names, result.get("colours")))
        layer.setOpacity(LAYER_OPACITY)
        layer.setName(tr("rsgeo land cover: {}").format(label))
        layer.triggerRepaint()
        self._refresh_legend(layer)
        seconds = time.monotonic() - asked_at
        self._say(tr("Land cover ({} classes) in {:.2f} s").format(len(names), seconds))
        self.classified.emit({"classes": names, "tiles": len(ids), "seconds": seconds})

    def _settings(self) -> None:
        from .settings_dialog import SettingsDialog  # noqa: PLC0415

        if SettingsDialog(self).exec() and self.path:
            self.open_result(self.path)  # restart the worker with the new settings
