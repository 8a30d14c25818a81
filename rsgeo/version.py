"""rsgeo's version (one place; ``rsgeo.__version__`` re-exports it)."""

__version__ = "0.1.0"
