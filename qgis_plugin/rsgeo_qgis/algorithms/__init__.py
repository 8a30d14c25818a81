"""The rsgeo Processing algorithms."""

from .assess import AssessAlgorithm
from .classify import ClassifyAlgorithm
from .embed import EmbedAlgorithm
from .query_example import QueryByExampleAlgorithm
from .query_text import TextQueryAlgorithm
from .sample import SampleAlgorithm

ALGORITHMS = (EmbedAlgorithm, ClassifyAlgorithm, TextQueryAlgorithm, QueryByExampleAlgorithm, SampleAlgorithm,
              AssessAlgorithm)

__all__ = ["ALGORITHMS", "AssessAlgorithm", "ClassifyAlgorithm", "EmbedAlgorithm", "QueryByExampleAlgorithm", "SampleAlgorithm", "TextQueryAlgorithm"]
