"""``cadre train`` (LoRA fine-tuning) and ``cadre export`` (GGUF adapter / merged GGUF / PEFT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cadre.cli.output import console, print_json
from cadre.cli.spec_options import set_field, spec_options, with_options
from cadre.train import TrainConfig

__all__ = ["FLAG_FIELDS", "TRAIN_OPTIONS", "build_config", "register"]

# The flags keep their historical short names where they differ from the TrainConfig field.
FLAG_NAMES = {
    "learning_rate": "lr",
    "warmup_fraction": "warmup",
    "early_stopping_patience": "patience",
}

# One option per TrainConfig field (LoRA fields flattened): the flags only override; the YAML given with
# --config (validated as the same TrainConfig) supplies everything else.
TRAIN_OPTIONS = spec_options(TrainConfig, renames=FLAG_NAMES)

# CLI parameter name → TrainConfig field path (dots for nested fields).
FLAG_FIELDS: dict[str, str] = {o.name: o.path for o in TRAIN_OPTIONS}

_OPTIONS_BY_NAME = {o.name: o for o in TRAIN_OPTIONS}


def build_config(config_file: Path | None, flags: dict[str, Any]) -> TrainConfig:
    """The TrainConfig from an optional YAML file overlaid with the flags that were given (not None)."""
    import yaml

    from cadre.config import parse_spec
    from cadre.errors import ConfigError, NotFoundError

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
        option = _OPTIONS_BY_NAME[flag]
        set_field(data, option.path, option.parse(value))
    for required in ("data", "out"):
        if required not in data:
            raise ConfigError(f"--{required} is required (or set `{required}:` in the --config file)")
    return parse_spec(TrainConfig, data, source=source)


def _train(
    config: Path | None = typer.Option(None, "--config", help="YAML file with TrainConfig fields"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON (no progress bar)"),
    **flags: Any,
) -> None:
    """Fine-tune a LoRA specialist on task data (chat JSONL, prompt/completion, CSV, datasets dir).

    Several GPUs (DDP through HF accelerate; --batch-size stays the global batch, split between the processes):
    accelerate launch --multi_gpu --num_processes N -m cadre.cli.main train --data ... --out ...
    """
    from cadre.train import train

    cfg = build_config(config, flags)
    result = train(cfg, progress=not json_out, resume=resume)
    if not result.primary:  # another process of a multi-process run: rank 0 reports
        return
    if json_out:
        print_json({"adapter_dir": result.adapter_dir, **result.metrics})
        return
    _print_result(result)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``export`` to the cadre app."""
    app.command("train")(with_options(_train, TRAIN_OPTIONS, before=["config"], after=["resume", "json_out"]))

    @app.command("export")
    def export_cmd(
        directory: Path = typer.Argument(..., help="a `cadre train` output directory"),
        format: str = typer.Option(
            "gguf-adapter", "--format", help="gguf-adapter | gguf-merged | peft | ollama (Modelfile + GGUFs)"
        ),
        quant: str | None = typer.Option(
            None, "--quant", help="F32|F16|Q8_0|Q4_0 (default: adapter F32; merged Q8_0 on adapted tensors)"
        ),
        out: Path | None = typer.Option(None, "--out", help="output file (directory for peft and ollama)"),
        merge: bool = typer.Option(
            False, "--merge", help="ollama: FROM one merged GGUF instead of the base plus ADAPTER"
        ),
        json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Export a trained adapter: llama.cpp LoRA GGUF, merged GGUF, a clean PEFT copy, or an Ollama Modelfile."""
        import time

        from cadre.errors import ConfigError
        from cadre.train import export_adapter, export_ollama

        if merge and format != "ollama":
            raise ConfigError(
                "--merge applies to --format ollama (for one merged GGUF use --format gguf-merged)"
            )
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        if format == "ollama":
            result = export_ollama(directory, out, merge=merge, quant=quant)
            path = result.directory
            extra = {
                "modelfile": result.modelfile,
                "files": result.files,
                "ollama_create": result.create_command,
            }
        else:
            path = export_adapter(directory, format, quant=quant, out=out)
        seconds = round(time.perf_counter() - started, 2)
        size = (
            sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
        if json_out:
            print_json({"path": path, "format": format, "bytes": size, "seconds": seconds, **extra})
            return
        console.print(f"wrote {format} to [bold]{path}[/] ({size / 1e6:.1f} MB) in {seconds:.1f} s")
        if extra:
            console.print(f"next: {extra['ollama_create']}", highlight=False, soft_wrap=True)


def _time_line(m: dict[str, Any]) -> str:
    """Where the time went: optimizer steps against the budget, then the other phases."""
    secs = m.get("seconds") or {}
    budget = f" of a {m['budget_seconds']:.0f} s budget" if m.get("budget_seconds") else ""
    parts = [f"train {secs.get('train', m['train_seconds']):.0f} s{budget}"]
    names = {"load_model": "load", "evaluate": "eval", "checkpoints": "checkpoints"}
    parts += [f"{label} {secs[k]:.0f} s" for k, label in names.items() if k in secs]
    return ", ".join(parts) + (f"; total {secs['total']:.0f} s" if "total" in secs else "")


def _print_result(result: Any) -> None:
    from rich.table import Table

    from cadre.train import learning_curve

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
        ("time", _time_line(m)),
    ]
    prompt = m.get("prompt") or {}
    if prompt.get("mode") in ("drop", "replace"):
        trained = "dropped" if prompt["mode"] == "drop" else f"replaced by {prompt['system']!r}"
        rows.append(("system prompt", f"the data's constant one {trained} (recorded; applied when served)"))
    metric = next((k for k in ("exact_match", "json_match") if k in best), None)
    trend = learning_curve(m.get("history") or [], metric, m["train_examples"])[-1].removeprefix("- ")
    rows.append(("learning curve", trend.split(":")[0] + " (model card: README.md)"))
    for key in ("exact_match", "json_match"):
        if key in best:
            rows.append((key, f"{best[key]:.3f}"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(f"next: cadre export {result.adapter_dir} --format gguf-adapter")
