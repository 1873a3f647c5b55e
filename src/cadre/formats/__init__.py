"""cadre.formats: readers for the model file formats cadre meets, below every feature package.

Imports only :mod:`cadre.errors`, so runtime, costmodel and train share one reader each.
"""

from __future__ import annotations

from cadre.formats.gguf import GGUFHeader, open_gguf_weights, read_gguf_header

__all__ = ["GGUFHeader", "open_gguf_weights", "read_gguf_header"]
