"""``cadre train`` (LoRA fine-tuning) and ``cadre export`` (GGUF adapter / merged GGUF / PEFT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cadre.cli.output import console, print_json

__all__ = ["FLAG_FIELDS", "register"]

# CLI parameter name → TrainConfig field path (dots for nested fields). The flags only override; the YAML
# given with --config (validated as the same TrainConfig) supplies everything else.
FLAG_FIELDS: dict[str, str] = {
    "base": "base",
    "data": "data",
    "eval_data": "eval_data",
    "out": "out",
    "eval_fraction": "eval_fraction",
    "system": "system",
    "template": "template",
    "target": "target",
    "prompt_column": "prompt_column",
    "completion_column": "completion_column",
    "max_length": "max_length",
    "too_long": "too_long",
    "rank": "lora.rank",
    "alpha": "lora.alpha",
    "dropout": "lora.dropout",
    "target_modules": "lora.target_modules",
    "lr": "learning_rate",
    "schedule": "schedule",
    "warmup": "warmup_fraction",
    "batch_size": "batch_size",
    "micro_batch_size": "micro_batch_size",
    "epochs": "epochs",
    "budget": "budget",
    "max_steps": "max_steps",
    "eval_every": "eval_every",
    "metric": "metric",
    "patience": "early_stopping_patience",
    "save_every": "save_every",
    "seed": "seed",
    "device": "device",
    "precision": "precision",
    "qlora": "qlora",
    "threads": "threads",
}


def build_config(config_file: Path | None, flags: dict[str, Any]) -> Any:
    """The TrainConfig from an optional YAML file overlaid with the flags that were given (not None)."""
    import yaml

    from cadre.config.base import parse_spec
    from cadre.errors import ConfigError, NotFoundError
    from cadre.train.config import TrainConfig

    data: dict[str, Any] = {}
    source = "flags"
    if config_file is not None:
        if not config_file.is_file():
            raise NotFoundError(f"config file {str(config_file)!r} does not exist")
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{config_file}: not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: expected a mapping of TrainConfig fields")
        data, source = loaded, f"{config_file} + flags"
    for flag, value in flags.items():
        if value is None:
            continue
        if flag == "target_modules":
            value = [m.strip() for m in str(value).split(",") if m.strip()]
        node = data
        *parents, leaf = FLAG_FIELDS[flag].split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    for required in ("data", "out"):
        if required not in data:
            raise ConfigError(f"--{required} is required (or set `{required}:` in the --config file)")
    return parse_spec(TrainConfig, data, source=source)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``export`` to the cadre app."""

    @app.command("train")
    def train_cmd(
        data: Path | None = typer.Option(
            None, "--data", help="training data: .jsonl, .csv or a datasets directory"
        ),
        out: Path | None = typer.Option(None, "--out", help="output directory"),
        base: str | None = typer.Option(
            None, "--base", help="bundled name, .gguf file or model dir (default: smollm2-135m)"
        ),
        eval_data: Path | None = typer.Option(
            None, "--eval-data", help="held-out data (default: split off --eval-fraction)"
        ),
        config: Path | None = typer.Option(None, "--config", help="YAML file with TrainConfig fields"),
        resume: bool = typer.Option(
            False, "--resume", help="continue the run in --out from its last checkpoint"
        ),
        eval_fraction: float | None = typer.Option(
            None, "--eval-fraction", help="share held out (default: 0.1)"
        ),
        system: str | None = typer.Option(None, "--system", help="system prompt for examples without one"),
        template: str | None = typer.Option(
            None, "--template", help="user message from row fields: 'Classify: {text}'"
        ),
        target: str | None = typer.Option(
            None, "--target", help="row field holding the answer (with --template)"
        ),
        prompt_column: str | None = typer.Option(
            None, "--prompt-column", help="CSV prompt column (default: prompt)"
        ),
        completion_column: str | None = typer.Option(
            None, "--completion-column", help="answer column (default: completion)"
        ),
        max_length: int | None = typer.Option(None, "--max-length", help="tokens per example (default: 512)"),
        too_long: str | None = typer.Option(
            None, "--too-long", help="truncate | drop | error (default: truncate)"
        ),
        rank: int | None = typer.Option(None, "--rank", help="LoRA rank (default: 16)"),
        alpha: float | None = typer.Option(None, "--alpha", help="LoRA alpha (default: 32)"),
        dropout: float | None = typer.Option(None, "--dropout", help="LoRA dropout (default: 0.05)"),
        target_modules: str | None = typer.Option(
            None, "--target-modules", help="comma-separated (default: all 7 linear)"
        ),
        lr: float | None = typer.Option(None, "--lr", help="peak learning rate (default: 2e-4)"),
        schedule: str | None = typer.Option(
            None, "--schedule", help="cosine | linear | constant (default: cosine)"
        ),
        warmup: float | None = typer.Option(
            None, "--warmup", help="share of steps warming up (default: 0.05)"
        ),
        batch_size: int | None = typer.Option(
            None, "--batch-size", help="examples per optimizer step (default: 8)"
        ),
        micro_batch_size: int | None = typer.Option(
            None, "--micro-batch-size", help="per forward pass (default: batch)"
        ),
        epochs: float | None = typer.Option(
            None, "--epochs", help="passes over the data (default: 3 without --budget)"
        ),
        budget: str | None = typer.Option(None, "--budget", help="time (10m, 1h) or tokens (200k tokens)"),
        max_steps: int | None = typer.Option(None, "--max-steps", help="hard cap on optimizer steps"),
        eval_every: int | None = typer.Option(
            None, "--eval-every", help="steps between evaluations (default: ~8 per run)"
        ),
        metric: str | None = typer.Option(None, "--metric", help="exact_match | json_match (by generation)"),
        patience: int | None = typer.Option(
            None, "--patience", help="evals without improvement before stopping (default: 3)"
        ),
        save_every: int | None = typer.Option(
            None, "--save-every", help="steps between checkpoints (default: 50)"
        ),
        seed: int | None = typer.Option(None, "--seed", help="random seed (default: 0)"),
        device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default: auto)"),
        precision: str | None = typer.Option(None, "--precision", help="auto | bf16 | fp32 (default: auto)"),
        qlora: bool | None = typer.Option(
            None, "--qlora/--no-qlora", help="4-bit NF4 base (CUDA + bitsandbytes)"
        ),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch"),
        json_out: bool = typer.Option(False, "--json", help="print the result as JSON (no progress bar)"),
    ) -> None:
        """Fine-tune a LoRA specialist on task data (chat JSONL, prompt/completion, CSV, datasets dir)."""
        from cadre.train import train

        flags = {k: v for k, v in locals().items() if k in FLAG_FIELDS}
        cfg = build_config(config, flags)
        result = train(cfg, progress=not json_out, resume=resume)
        if json_out:
            print_json({"adapter_dir": result.adapter_dir, **result.metrics})
            return
        _print_result(result)

    @app.command("export")
    def export_cmd(
        directory: Path = typer.Argument(..., help="a `cadre train` output directory"),
        format: str = typer.Option("gguf-adapter", "--format", help="gguf-adapter | gguf-merged | peft"),
        quant: str | None = typer.Option(
            None, "--quant", help="F32|F16|Q8_0|Q4_0 (default: adapter F32; merged Q8_0 on adapted tensors)"
        ),
        out: Path | None = typer.Option(None, "--out", help="output file (directory for peft)"),
        json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Export a trained adapter: llama.cpp LoRA GGUF, merged GGUF, or a clean PEFT copy."""
        from cadre.train.export import export_adapter

        path = export_adapter(directory, format, quant=quant, out=out)
        size = (
            sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
        if json_out:
            print_json({"path": path, "format": format, "bytes": size})
        else:
            console.print(f"wrote {format} to [bold]{path}[/] ({size / 1e6:.1f} MB)")


def _print_result(result: Any) -> None:
    from rich.table import Table

    m = result.metrics
    best = m.get("best") or {}
    table = Table(title=f"trained adapter: {result.adapter_dir}", show_header=False)
    rows = [
        ("stopped", f"{m['stopped']} after {m['steps']} steps ({m['epochs']:.2f} epochs)"),
        ("adapter from", m["adapter_from"]),
        ("examples", f"{m['train_examples']} train, {m['eval_examples']} held out"),
        ("truncated / dropped", f"{m['truncated']} / {m['dropped']}"),
        (
            "final train loss",
            f"{m['final_train_loss']:.4f}" if m.get("final_train_loss") is not None else "—",
        ),
        ("best eval loss", f"{best['eval_loss']:.4f}" if best else "—"),
        ("throughput", f"{m['tokens_per_second']:.0f} tokens/s ({m['precision']}, {m['device']})"),
        ("peak RSS", f"{m['peak_rss_mb']:.0f} MB"),
    ]
    for key in ("exact_match", "json_match"):
        if key in best:
            rows.append((key, f"{best[key]:.3f}"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(f"next: cadre export {result.adapter_dir} --format gguf-adapter")
