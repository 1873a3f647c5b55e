"""The model card (README.md) written next to a trained adapter."""

from __future__ import annotations

from typing import Any

from cadre.train.base import BaseInfo
from cadre.train.config import TrainConfig
from cadre.train.data import DataSummary

__all__ = ["learning_curve", "render_model_card"]

# A last evaluation better than the one before by more than this (relative) reads as "still improving".
_STILL_IMPROVING = 0.02


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _prompt_line(prompt: dict[str, Any] | None) -> str:
    if not prompt or not prompt.get("data_system"):
        return "- system prompt: the data's own (no constant system prompt in every example)"
    n = len(prompt["data_system"])
    if prompt["mode"] == "keep":
        return f"- system prompt: the data's constant one ({n} characters), kept; served with it"
    if prompt["mode"] == "drop":
        return (
            f"- system prompt: the data's constant one ({n} characters) was dropped in training; served without "
            "it (cadre removes it from requests that send it, from the adapter's metadata)"
        )
    return (
        f"- system prompt: the data's constant one ({n} characters) was replaced in training by "
        f"{prompt['system']!r}; served with that (cadre swaps it in, from the adapter's metadata)"
    )


def learning_curve(history: list[dict[str, Any]], metric: str | None, train_examples: int) -> list[str]:
    """Markdown: held-out score vs examples seen, and whether more data or time looks worth it."""
    if not history:
        return ["- no held-out evaluation (no held-out split), so no learning curve"]
    key = metric if metric and metric in history[-1] else "eval_loss"
    label = metric if key == metric else "held-out loss"
    lines = [f"| examples seen | epochs | {label} |", "|---|---|---|"]
    for h in history:
        seen = h.get("examples_seen")
        epochs = seen / train_examples if seen is not None and train_examples else None
        lines.append(f"| {_fmt(seen)} | {_fmt(epochs)} | {_fmt(h.get(key))} |")
    lines.append("")
    if len(history) < 2:
        lines.append("- one evaluation only: train longer to see the trend")
        return lines
    last, before = history[-1][key], history[-2][key]
    gain = (before - last) / max(abs(before), 1e-9) if key == "eval_loss" else last - before
    best_last = all((h[key] >= last if key == "eval_loss" else h[key] <= last) for h in history)
    if gain > _STILL_IMPROVING and best_last:
        lines.append(
            "- still improving at the end of the run: more training time (a larger `--budget`) or more data "
            "is likely to help"
        )
    else:
        lines.append(
            "- levelled off (the last evaluation gained little or nothing): more time on the same data is "
            "unlikely to help much; more varied data, a larger base or other settings may"
        )
    return lines


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
        _prompt_line(metrics.get("prompt")),
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
        "## Learning curve",
        *learning_curve(metrics.get("history") or [], config.metric, metrics["train_examples"]),
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
