"""cadre: replace one generalist LLM with a cadre of small specialized models."""

from cadre.errors import CadreError

__version__ = "0.1.0"

__all__ = ["CadreError", "__version__"]
