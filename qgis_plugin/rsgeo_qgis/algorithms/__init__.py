"""The rsgeo Processing algorithms."""

from .classify import ClassifyAlgorithm
from .embed import EmbedAlgorithm
from .query_example import QueryByExampleAlgorithm
from .query_text import TextQueryAlgorithm

ALGORITHMS = (EmbedAlgorithm, ClassifyAlgorithm, TextQueryAlgorithm, QueryByExampleAlgorithm)

__all__ = ["ALGORITHMS", "ClassifyAlgorithm", "EmbedAlgorithm", "QueryByExampleAlgorithm", "TextQueryAlgorithm"]
