"""The model card (README.md) written next to a trained adapter."""

from __future__ import annotations

from typing import Any

from cadre.train.base import BaseInfo
from cadre.train.config import TrainConfig
from cadre.train.data import DataSummary

__all__ = ["render_model_card"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def render_model_card(
    config: TrainConfig, base: BaseInfo, summary: DataSummary, metrics: dict[str, Any]
) -> str:
    """Markdown: base, data summary, hyperparameters, metrics, intended use and limits."""
    best = metrics.get("best") or {}
    answers = ", ".join(f"`{a[:40]}` ({n})" for a, n in summary.top_answers) or "—"
    lines = [
        f"# LoRA specialist on {base.name}",
        "",
        "Trained with `cadre train`. This directory is a PEFT adapter (`adapter_model.safetensors`,",
        "`adapter_config.json`); `cadre export` turns it into a llama.cpp GGUF adapter or a merged GGUF.",
        "",
        "## Base model",
        f"- name: `{base.name}` ({base.kind}, architecture `{base.architecture}`, context {base.context_length})",
        f"- file: `{base.path}`",
        "",
        "## Data",
        f"- training file: `{config.data}`"
        + (f"; held-out file: `{config.eval_data}`" if config.eval_data else ""),
        f"- {metrics['train_examples']} training and {metrics['eval_examples']} held-out examples; "
        f"{summary.distinct_answers} distinct answers (most common: {answers})",
        f"- {metrics['truncated']} examples truncated and {metrics['dropped']} dropped at "
        f"max_length={config.max_length}",
        "",
        "## Hyperparameters",
        "| setting | value |",
        "|---|---|",
        f"| LoRA rank / alpha / dropout | {config.lora.rank} / {_fmt(config.lora.alpha)} / {_fmt(config.lora.dropout)} |",
        f"| target modules | {', '.join(config.lora.target_modules)} |",
        f"| learning rate / schedule / warmup | {_fmt(config.learning_rate)} / {config.schedule} / "
        f"{_fmt(config.warmup_fraction)} of steps |",
        f"| batch (micro × accumulation) | {config.batch_size} ({config.micro_batch} × {config.accumulation}) |",
        f"| steps / epochs | {metrics['steps']} / {_fmt(metrics['epochs'])} |",
        f"| precision / device | {metrics['precision']} / {metrics['device']} |",
        f"| seed | {config.seed} |",
        "",
        "## Metrics",
        f"- stopped: {metrics['stopped']}; adapter taken from the {metrics['adapter_from']}",
        f"- held-out loss (best): {_fmt(best.get('eval_loss'))}"
        + (f"; {config.metric}: {_fmt(best.get(config.metric))}" if config.metric else ""),
        f"- final training loss: {_fmt(metrics.get('final_train_loss'))}",
        f"- {metrics['tokens_seen']} tokens in {_fmt(metrics['train_seconds'])} s "
        f"({_fmt(metrics['tokens_per_second'])} tokens/s); peak RSS {_fmt(metrics['peak_rss_mb'])} MB",
        "- time (s): "
        + ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in (metrics.get("seconds") or {}).items())
        + (
            f"; budget {_fmt(metrics['budget_seconds'])} s of training"
            if metrics.get("budget_seconds")
            else ""
        ),
        "",
        "## Intended use and limits",
        "- Answers requests like the training data, in the base model's chat format; route other requests",
        "  elsewhere (a generalist), since a small specialist is confidently wrong outside its task.",
        "- The metrics above come from the held-out split of the same data source; they say nothing about",
        "  inputs unlike it. Evaluate on real traffic (`cadre eval`) before relying on it.",
        "- The base model's own limits and licence apply.",
        "",
    ]
    return "\n".join(lines)
