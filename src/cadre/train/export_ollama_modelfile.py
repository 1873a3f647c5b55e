"""Export a trained specialist for Ollama: a folder with a Modelfile and the GGUF files it names.

The Modelfile follows Ollama's documented format (docs/modelfile.md in the ollama repository): ``FROM`` the
base GGUF (or the merged GGUF), ``ADAPTER`` the llama.cpp LoRA GGUF when not merged, ``TEMPLATE`` the base's
chat template translated to Go template syntax (:mod:`cadre.train.export_ollama_template`), one
``PARAMETER stop`` per stop string, and ``SYSTEM`` when the specialist was trained with a system prompt.
Paths in it are relative to the Modelfile, so the folder can be moved or copied as a whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.errors import ConfigError, ModelLoadError, NotFoundError
from cadre.formats import read_gguf_header
from cadre.runtime.templates import ChatTemplate
from cadre.train.export import export_adapter
from cadre.train.export_ollama_template import probe_turn_format

__all__ = ["OllamaExport", "export_ollama", "ollama_model_name"]


@dataclass(frozen=True)
class OllamaExport:
    """What :func:`export_ollama` wrote."""

    directory: Path
    modelfile: Path
    name: str  # the suggested `ollama create` name
    files: list[Path] = field(default_factory=list)  # the GGUF files the Modelfile names
    merged: bool = False

    @property
    def create_command(self) -> str:
        return f"ollama create {self.name} -f {self.modelfile}"


def ollama_model_name(adapter_dir: Path) -> str:
    """A model name Ollama accepts, from the run directory's name (lower case, ``[a-z0-9._-]``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", adapter_dir.resolve().name.lower()).strip("-._")
    return name or "cadre-specialist"


def _special_tokens(path: Path) -> tuple[str, str]:
    """(BOS, EOS) text of a GGUF model, read with llama.cpp's tokenizer loaded alone (``vocab_only``)."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return tuple(  # type: ignore[return-value]
            vocab.detokenize([t], special=True).decode("utf-8", errors="replace") if t >= 0 else ""
            for t in (vocab.token_bos(), vocab.token_eos())
        )
    finally:
        vocab.close()


def _hf_token_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def base_chat_template(facts: dict[str, Any]) -> tuple[ChatTemplate, bool]:
    """The chat template the specialist was trained with (the base GGUF's or its tokenizer_config.json's), and
    whether the tokenizer adds BOS itself (then the Go template must not write it)."""
    path = Path(facts["path"])
    name = str(facts.get("name") or path)
    if facts.get("kind") == "gguf":
        if not path.is_file():
            raise NotFoundError(f"the base GGUF {str(path)!r} recorded in cadre.json no longer exists")
        header = read_gguf_header(path, what="base model")
        bos, eos = _special_tokens(path)
        adds_bos = header.metadata.get("tokenizer.ggml.add_bos_token") is True
        return ChatTemplate(header.chat_template, bos_token=bos, eos_token=eos, model=name), adds_bos
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    source = config.get("chat_template")
    if isinstance(source, list):  # named templates: the default one
        source = next((t.get("template") for t in source if t.get("name") == "default"), None)
    if not source and (path / "chat_template.jinja").is_file():
        source = (path / "chat_template.jinja").read_text(encoding="utf-8")
    template = ChatTemplate(
        source or None,
        bos_token=_hf_token_text(config.get("bos_token")),
        eos_token=_hf_token_text(config.get("eos_token")),
        model=name,
    )
    return template, config.get("add_bos_token") is True


def _quoted(text: str, what: str) -> str:
    """A Modelfile argument in triple quotes (the form that may span lines)."""
    if '"""' in text:
        raise ConfigError(
            f'the {what} contains """, which a Modelfile cannot quote; remove it and export again'
        )
    return f'"""{text}"""'


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` when both are on one filesystem (no second copy of the base), else copy."""
    if target.exists() and target.resolve() == source.resolve():
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _system_prompt(adapter_dir: Path) -> str | None:
    path = adapter_dir / "train_config.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("system")
    return value if isinstance(value, str) and value else None


def _read_facts(adapter_dir: Path) -> dict[str, Any]:
    meta = adapter_dir / "cadre.json"
    if not meta.is_file():
        if not adapter_dir.is_dir():
            raise NotFoundError(f"adapter directory {str(adapter_dir)!r} does not exist")
        raise ModelLoadError(
            f"{adapter_dir} has no cadre.json (written by `cadre train`): the Ollama export needs to know the base"
        )
    base: dict[str, Any] = json.loads(meta.read_text(encoding="utf-8"))["base"]
    if base.get("kind") != "gguf":
        raise ConfigError(
            f"the specialist in {adapter_dir} was trained on a transformers directory ({base.get('path')}); "
            "Ollama needs a GGUF base: train on a bundled model or a .gguf file"
        )
    return base


def export_ollama(
    adapter_dir: str | Path, out: str | Path | None = None, *, merge: bool = False, quant: str | None = None
) -> OllamaExport:
    """Write ``out`` (default ``<adapter_dir>/ollama``): ``Modelfile`` plus the GGUF files it names.

    Args:
        adapter_dir: a ``cadre train`` output directory trained on a GGUF base (bundled or a .gguf file).
        out: the folder to write; created if missing. Existing files of the same names are replaced.
        merge: fold the adapter into one GGUF (``FROM model.gguf``) instead of ``FROM`` the base plus
            ``ADAPTER adapter.gguf``.
        quant: passed to the GGUF export (adapter: F32 default; merged: Q8_0 on the adapted tensors).

    Raises:
        NotFoundError, ModelLoadError: not a trained adapter, or its base GGUF is gone.
        ConfigError: a transformers-directory base, or a chat template or system prompt a Modelfile cannot hold.
    """
    adapter_dir = Path(adapter_dir)
    facts = _read_facts(adapter_dir)
    target = Path(out) if out else adapter_dir / "ollama"
    if target.resolve() == adapter_dir.resolve():
        raise ConfigError("--out must differ from the adapter directory (use e.g. <run>/ollama)")
    template, adds_bos = base_chat_template(facts)
    turns = probe_turn_format(template, adds_bos=adds_bos, model=str(facts.get("name")))
    system = _system_prompt(adapter_dir)
    target.mkdir(parents=True, exist_ok=True)

    lines = [
        f"# Ollama Modelfile for the cadre specialist {adapter_dir.resolve().name}, written by `cadre export`"
    ]
    files: list[Path] = []
    if merge:
        model = export_adapter(adapter_dir, "gguf-merged", quant=quant, out=target / "model.gguf")
        files.append(model)
        lines.append(f"FROM ./{model.name}")
    else:
        base = Path(facts["path"])
        if not base.is_file():
            raise NotFoundError(f"the base GGUF {str(base)!r} recorded in cadre.json no longer exists")
        base_copy = target / base.name
        _link_or_copy(base, base_copy)
        adapter = export_adapter(adapter_dir, "gguf-adapter", quant=quant, out=target / "adapter.gguf")
        files += [base_copy, adapter]
        lines += [f"FROM ./{base_copy.name}", f"ADAPTER ./{adapter.name}"]
    lines.append(f"TEMPLATE {_quoted(turns.go_template(), 'chat template')}")
    for stop in turns.stops([template.eos_token, *template.extra_stops]):
        if '"' not in stop:
            lines.append(f'PARAMETER stop "{stop}"')
    if system is not None:
        lines.append(f"SYSTEM {_quoted(system, 'system prompt')}")
    modelfile = target / "Modelfile"
    modelfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return OllamaExport(
        directory=target, modelfile=modelfile, name=ollama_model_name(adapter_dir), files=files, merged=merge
    )
