"""Processing algorithm: Classify land cover (``rsgeo classify``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingParameterString

from ..compat import FLAG_ADVANCED, add_flag
from ..runner import RsgeoCommand
from .base import RsgeoAlgorithm, tr


class ClassifyAlgorithm(RsgeoAlgorithm):
    command = "classify"

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:  # noqa: N802
        return tr("Classify land cover")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Zero-shot land cover: every tile gets a softmax score per class and its top class, written "
            "as a polygon layer styled by top class. Give a named class set or your own comma-separated "
            "classes (any language the model reads).\n\n"
            "Input: a scene, or a GeoPackage from Embed scene (then only the text encoder runs)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_source_parameters()
        self.addParameter(QgsProcessingParameterString(
            "CLASS_SET", tr("Class set: a built-in one (eurosat, esa-worldcover …; `rsgeo models --class-sets` "
                            "lists them) or a .yaml/.csv class set file"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            "CLASSES", tr("…or classes, comma separated (e.g. water, forest, urban area)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            "LANG", tr("Language of the class names (en, pt, zh …; empty: the model's default)"), optional=True))
        self.addParameter(add_flag(QgsProcessingParameterString(
            "TEMPLATES", tr("Prompt templates, one per line, {} for the class (empty: the model's)"),
            multiLine=True, optional=True), FLAG_ADVANCED))
        self.addParameter(QgsProcessingParameterString("LAYER", tr("Layer name"), defaultValue="landcover"))
        self.add_output_parameter(optional=True)
        self.add_map_parameters(dense=True)
        self.add_common_parameters()

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source, is_result = self.source_path(parameters, context)
        class_set = self.parameterAsString(parameters, "CLASS_SET", context).strip()
        classes = [c.strip() for c in self.parameterAsString(parameters, "CLASSES", context).split(",") if c.strip()]
        if bool(class_set) == bool(classes):
            raise QgsProcessingException(tr("Give either a class set or a list of classes (one of the two)."))
        templates = [t.strip() for t in self.parameterAsString(parameters, "TEMPLATES", context).splitlines() if t.strip()]
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise QgsProcessingException(tr("Each template needs {{}} where the class goes: {!r}").format(bad[0]))
        layer = self.parameterAsString(parameters, "LAYER", context).strip() or "landcover"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", layer):
            raise QgsProcessingException(tr("Layer name {!r}: use letters, digits and _ only.").format(layer))
        self._layer = layer
        output = self.output_path(parameters, context, in_place_ok=is_result)
        options = {
            "class_set": class_set or None,
            "classes": classes or None,
            "lang": self.parameterAsString(parameters, "LANG", context).strip() or None,
            "template": templates or None,
            "layer": layer,
            **self.common_options(parameters, context, is_result=is_result),
            **self.map_options(parameters, context),
            "overwrite": bool(output),
        }
        return RsgeoCommand("classify", source, output, options)

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        return [self._layer] if self._layer in after else []
