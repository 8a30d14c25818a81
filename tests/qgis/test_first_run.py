"""A first run that makes sense (issue 18), in a real headless QGIS.

Offline weights from the settings dialog and the algorithms, the chip size in the
main dialog as a length with its unit, the few-tiles warning in the feedback,
progress with the chip count, a failing run's error reported once, a rerun that
reloads the open layer, and the search panel's colours, opacity and Clear.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtWidgets import QFormLayout, QLabel
from qgis_helpers import ENCODING_ALGORITHM_IDS, RecordingFeedback, set_plugin_settings, wait_until

S2 = "eolearn/s2_l1c_scene2_13band.tif"  # 100 x 101 px at 10 m


class TextFeedback(RecordingFeedback):
    """Also keeps the progress texts."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def setProgressText(self, text: str) -> None:  # noqa: N802
        self.texts.append(text)
        super().setProgressText(text)


def _form_labels(widget) -> list[str]:  # noqa: ANN001
    form = widget.findChild(QFormLayout)
    labels = []
    for row in range(form.rowCount()):
        item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
        if item is not None and isinstance(item.widget(), QLabel):
            labels.append(item.widget().text())
    return labels


def test_settings_dialog_keeps_checkpoint_and_cache_folder(plugin) -> None:
    from rsgeo_qgis import settings as plugin_settings
    from rsgeo_qgis.settings_dialog import SettingsDialog

    with set_plugin_settings(checkpoint="/data/weights/RemoteCLIP-ViT-B-32.pt", cache_dir="/data/cache"):
        dialog = SettingsDialog()
        assert "Checkpoint (local weights)" in _form_labels(dialog)
        assert "Weights cache folder" in _form_labels(dialog)
        assert dialog.checkpoint.filePath() == "/data/weights/RemoteCLIP-ViT-B-32.pt"
        assert dialog.cache_dir.filePath() == "/data/cache"
        dialog.checkpoint.setFilePath("/other/rs-m-clip")
        dialog.cache_dir.setFilePath("/other/cache")
        dialog.accept()
        saved = plugin_settings.load()
        assert (saved.checkpoint, saved.cache_dir) == ("/other/rs-m-clip", "/other/cache")


def test_chip_size_is_in_the_main_dialog_as_a_length_and_weights_fields_exist(plugin) -> None:
    from rsgeo_qgis.compat import FLAG_ADVANCED

    registry = QgsApplication.processingRegistry()
    for alg_id in ENCODING_ALGORITHM_IDS:
        alg = registry.algorithmById(alg_id)
        chip = alg.parameterDefinition("CHIP_SIZE")
        assert chip is not None and not (chip.flags() & FLAG_ADVANCED), alg_id
        assert "metres" in chip.description() and "pixels" in chip.description()
        assert alg.parameterDefinition("STRIDE").flags() & FLAG_ADVANCED  # the rest stays advanced
        for name in ("CHECKPOINT", "CACHE_DIR"):
            assert alg.parameterDefinition(name) is not None, (alg_id, name)
            assert "rsgeo settings…" in alg.parameterDefinition(name).description()


def test_settings_weights_reach_the_command_of_the_default_model_only(plugin, project, data_dir: Path) -> None:
    alg = QgsApplication.processingRegistry().createAlgorithmById("rsgeo:classify")
    context = QgsProcessingContext()
    scene = str(data_dir / "RGB.byte.tif")
    with set_plugin_settings(model="remoteclip-vit-b-32", checkpoint="/w/RemoteCLIP-ViT-B-32.pt", cache_dir="/c"):
        cmd = alg.build_command({"INPUT": scene, "CLASSES": "water,forest", "CHIP_SIZE": "500m"}, context)
        assert cmd.options["checkpoint"] == "/w/RemoteCLIP-ViT-B-32.pt" and cmd.options["cache_dir"] == "/c"
        assert "--chip-size=500m" in cmd.argv() and "--checkpoint=/w/RemoteCLIP-ViT-B-32.pt" in cmd.argv()
        other = alg.build_command({"INPUT": scene, "CLASSES": "water,forest", "MODEL": "arch:ViT-B-32"}, context)
        assert other.options["checkpoint"] is None and other.options["cache_dir"] == "/c"
        given = alg.build_command({"INPUT": scene, "CLASSES": "a,b", "CHECKPOINT": "/mine.pt"}, context)
        assert given.options["checkpoint"] == "/mine.pt"
        with pytest.raises(QgsProcessingException, match="Chip size"):
            alg.build_command({"INPUT": scene, "CLASSES": "a,b", "CHIP_SIZE": "12 furlongs"}, context)


def test_weights_missing_message_says_where_to_set_them(plugin) -> None:
    from rsgeo_qgis.definitions.options import SETTINGS_MENU_ITEM, ref, render

    assert plugin.actions[1].text() == SETTINGS_MENU_ITEM == "rsgeo settings…"
    message = render(f"pass {ref('checkpoint', 'DIR')}", "qgis")
    assert message == "pass ‘Checkpoint (local weights)’ = DIR (in the algorithm's field, or Plugins ▸ rsgeo ▸ rsgeo settings…)"


def test_few_tiles_warning_and_chip_progress_in_the_feedback(plugin, external, project, data_dir: Path,
                                                             tmp_path: Path) -> None:
    import processing

    feedback = TextFeedback()
    # test:hash states no training scale: its 224 px default chip covers the whole 100 x 101 px scene.
    processing.run("rsgeo:classify", {
        "INPUT": str(data_dir / S2), "OUTPUT": str(tmp_path / "few.gpkg"), "MODEL": "test:hash", "BANDS": "4,3,2",
        "CLASSES": "water, forest",
    }, feedback=feedback)
    warnings = [e for e in feedback.errors if "tile" in e]
    assert len(warnings) == 1, feedback.errors
    assert "only 1 tile" in warnings[0] and "‘Chip size’" in warnings[0] and "--chip-size" not in warnings[0]
    feedback = TextFeedback()
    processing.run("rsgeo:embed", {
        "INPUT": str(data_dir / S2), "OUTPUT": str(tmp_path / "many.gpkg"), "MODEL": "test:hash", "BANDS": "4,3,2",
        "CHIP_SIZE": "100m",
    }, feedback=feedback)
    assert not [e for e in feedback.errors if "tile" in e], feedback.errors
    counts = [t for t in feedback.texts if re.fullmatch(r"[\d,]+ / 110 chips(, about .+ left)?", t)]
    assert counts and counts[-1].startswith("110 / 110"), feedback.texts


def test_a_failing_run_reports_its_error_once(plugin, external, project, embedded: Path) -> None:
    import processing

    feedback = RecordingFeedback()
    with pytest.raises(QgsProcessingException):
        processing.run("rsgeo:classify", {"RESULT": str(embedded), "CLASSES": "a,b", "MODEL": "arch:ViT-S-32"},
                       feedback=feedback)
    assert sum("was encoded with model" in e for e in feedback.errors) == 1, feedback.errors


def test_qgis_process_prints_a_failing_runs_error_once(external, embedded: Path, tmp_path: Path) -> None:
    """The real qgis_process with the plugin enabled in a fresh profile: one ERROR line with the message
    (QGIS also echoes every reported error through its message log, the one other line allowed)."""
    import shutil
    import subprocess

    from qgis_helpers import PLUGIN_DIR

    home = tmp_path / "home"
    profile = home / ".local/share/QGIS/QGIS3/profiles/default"
    (profile / "QGIS").mkdir(parents=True)
    shutil.copytree(PLUGIN_DIR / "rsgeo_qgis", profile / "python/plugins/rsgeo_qgis", symlinks=False)
    (profile / "QGIS/QGIS3.ini").write_text(
        f"[PythonPlugins]\nrsgeo_qgis=true\n[rsgeo]\npython={external}\nbackend=external\nmodel=test:hash\n")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    # A fresh process as a user starts it: none of this test session's QGIS or Python settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS", "PYTHON", "QT_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        ["/usr/bin/qgis_process.bin", "run", "rsgeo:classify", "--", f"RESULT={embedded}", "CLASSES=a,b",
         "MODEL=arch:ViT-S-32"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).splitlines()
    with_message = [line for line in lines if "was encoded with model" in line]
    assert len([line for line in with_message if line.startswith("ERROR:")]) == 1, lines
    assert len(with_message) <= 2, lines


def test_rerunning_a_text_query_in_place_reloads_the_open_layer(plugin, external, project, embedded: Path) -> None:
    import processing

    params = {"RESULT": str(embedded), "TEXT": "white clouds", "TOP_K": 5}
    processing.runAndLoadResults("rsgeo:textquery", params, feedback=RecordingFeedback())
    def shown() -> list:
        return [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("query_")]

    layers = [lyr for lyr in shown() if isinstance(lyr, QgsVectorLayer)]
    rasters = [lyr for lyr in shown() if isinstance(lyr, QgsRasterLayer)]  # its similarity map
    assert len(layers) == 1 and layers[0].featureCount() == 5 and len(rasters) == 1
    feedback = RecordingFeedback()
    processing.runAndLoadResults("rsgeo:textquery", {**params, "TOP_K": 12}, feedback=feedback)
    again = shown()
    assert sorted(again, key=id) == sorted(layers + rasters, key=id), [lyr.name() for lyr in again]  # no second copies
    assert layers[0].featureCount() == 12
    assert sorted(f["rank"] for f in layers[0].getFeatures()) == list(range(1, 13))
    assert any("reloaded" in i for i in feedback.infos)
    assert any("the open raster was reloaded" in i for i in feedback.infos) and rasters[0].isValid()


def test_search_panel_colours_opacity_clear_and_long_status(plugin, external, project, embedded: Path) -> None:
    from rsgeo_qgis.definitions.colours import LAYER_OPACITY, WORLDCOVER

    dock = plugin.ensure_dock()
    answers: list[dict] = []
    classified: list[dict] = []
    errors: list[str] = []
    dock.answered.connect(answers.append)
    dock.classified.connect(classified.append)
    dock.failed.connect(errors.append)
    assert dock.open_result(str(embedded))
    assert wait_until(lambda: dock.query.isEnabled() or bool(errors), 120), dock.status.text()
    dock.ask("shallow water")
    assert wait_until(lambda: len(answers) >= 1 or bool(errors), 60) and not errors, errors
    alone = [dock.results.item(i).text() for i in range(dock.results.count())]
    assert dock.search.layer.opacity() == LAYER_OPACITY
    dock.add_example(int(dock.results.item(5).data(256)), positive=True)
    assert wait_until(lambda: len(answers) >= 2 or bool(errors), 60) and not errors, errors
    assert [dock.results.item(i).text() for i in range(dock.results.count())] != alone
    dock.clear_examples()  # the query alone again
    assert wait_until(lambda: len(answers) >= 3 or bool(errors), 60) and not errors, errors
    assert [dock.results.item(i).text() for i in range(dock.results.count())] == alone
    dock.query.setText("")
    dock.clear_examples()  # nothing left to rank by: the list empties
    assert dock.results.count() == 0
    dock.classify(["urban area", "forest", "water", "airport"])
    assert wait_until(lambda: bool(classified) or bool(errors), 60) and not errors, errors
    layer = dock.landcover.layer
    colours = {c.value(): c.symbol().color().name() for c in layer.renderer().categories()}
    assert colours["urban area"] == "#fa0000" and colours["forest"] == "#006400" and colours["water"] == "#0064c8"
    assert layer.opacity() == LAYER_OPACITY
    long_path = "/very/long/folder/" * 12 + "scene.gpkg"
    dock._say(f"cannot open {long_path}")
    assert dock.status.toolTip() == f"cannot open {long_path}" and dock.status.wordWrap()
    dock.close_result()
