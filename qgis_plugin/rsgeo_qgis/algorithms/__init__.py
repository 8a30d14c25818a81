"""The rsgeo Processing algorithms."""

from .assess import AssessAlgorithm
from .classify import ClassifyAlgorithm
from .embed import EmbedAlgorithm
from .query_example import QueryByExampleAlgorithm
from .query_text import TextQueryAlgorithm
from .sample import SampleAlgorithm
from .stac_search import StacSearchAlgorithm
from .zones import ClassifyZonesAlgorithm, QueryZonesAlgorithm

ALGORITHMS = (EmbedAlgorithm, ClassifyAlgorithm, TextQueryAlgorithm, QueryByExampleAlgorithm, ClassifyZonesAlgorithm,
              QueryZonesAlgorithm, StacSearchAlgorithm, SampleAlgorithm, AssessAlgorithm)

__all__ = ["ALGORITHMS", "AssessAlgorithm", "ClassifyAlgorithm", "ClassifyZonesAlgorithm", "EmbedAlgorithm",
           "QueryByExampleAlgorithm", "QueryZonesAlgorithm", "SampleAlgorithm", "StacSearchAlgorithm",
           "TextQueryAlgorithm"]
