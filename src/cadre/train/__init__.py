"""cadre.train: task data → LoRA fine-tuning (PEFT) → adapter + model card; export to GGUF (``cadre.train.export``).

Public API::

    from cadre.train import TrainConfig, train
    result = train(TrainConfig(data="train.jsonl", out="runs/intent"))   # -> TrainResult(.adapter_dir, .metrics)

    from cadre.train.export import export_adapter
    export_adapter("runs/intent", "gguf-adapter")                         # -> Path of the .gguf
    export_ollama("runs/intent", "ollama/intent")                         # -> Modelfile + the GGUFs it names

Heavy libraries (torch, transformers, peft) are imported inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cadre.train.answer_match import json_match, normalize_answer, normalized_match
from cadre.train.config import LoraSettings, TrainConfig, parse_budget

if TYPE_CHECKING:
    from cadre.train.card import learning_curve
    from cadre.train.export import export_adapter
    from cadre.train.export_ollama_modelfile import OllamaExport, export_ollama
    from cadre.train.trainer import TrainResult

__all__ = [
    "LoraSettings",
    "OllamaExport",
    "TrainConfig",
    "TrainResult",
    "export_adapter",
    "export_ollama",
    "json_match",
    "learning_curve",
    "normalize_answer",
    "normalized_match",
    "parse_budget",
    "train",
]


def train(config: TrainConfig, *, progress: bool = True, resume: bool = False) -> TrainResult:
    """Fine-tune a LoRA adapter; see :func:`cadre.train.trainer.train`."""
    from cadre.train.trainer import train as _train

    return _train(config, progress=progress, resume=resume)


def __getattr__(name: str) -> Any:
    if name == "TrainResult":
        from cadre.train.trainer import TrainResult

        return TrainResult
    if name == "learning_curve":
        from cadre.train.card import learning_curve

        return learning_curve
    if name == "export_adapter":
        from cadre.train.export import export_adapter

        return export_adapter
    if name in ("export_ollama", "OllamaExport"):
        from cadre.train import export_ollama_modelfile as module

        return getattr(module, name)
    raise AttributeError(name)
