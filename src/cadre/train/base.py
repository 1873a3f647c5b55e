"""The base model a specialist is trained on: resolve a name, load it into transformers, describe it for export.

A base is a bundled model name (``smollm2-135m``), a ``.gguf`` file, or a transformers model directory.
A GGUF base is loaded with ``from_pretrained(dir, gguf_file=...)``, which dequantizes it to fp32: training then
uses exactly the weights llama.cpp serves. Dequantizing takes ~20 s on 2 cores, so the result is cached as
safetensors under ``$CADRE_HOME/cache/bases/`` (keyed by the file's path, size and mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cadre.errors import ModelLoadError, NotFoundError, did_you_mean
from cadre.formats import read_gguf_header
from cadre.paths import cadre_home

__all__ = ["BaseInfo", "BaseRef", "describe_base", "load_base_model", "load_tokenizer", "resolve_base"]


@dataclass(frozen=True)
class BaseRef:
    """Where a base model lives."""

    name: str  # what the user wrote
    kind: Literal["gguf", "hf"]
    path: Path  # the .gguf file or the model directory


@dataclass(frozen=True)
class BaseInfo:
    """What export needs to know about the base (saved as ``cadre.json`` next to the adapter)."""

    name: str
    kind: str
    path: str
    architecture: str  # llama.cpp architecture name ("llama", "gemma3", ...)
    n_head: int
    n_head_kv: int
    context_length: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_base(name: str) -> BaseRef:
    """Turn ``name`` into a :class:`BaseRef` (read by :func:`cadre.runtime.registry.resolve_model`).

    Raises:
        NotFoundError: not a bundled model, nor an existing .gguf file or model directory, or a remote endpoint.
        ModelLoadError: a bundled model whose package is missing (the message gives the pip command), an
            embedding model, or a path that holds no loadable model.
    """
    from cadre.runtime.bundled import bundled_models, get_bundled
    from cadre.runtime.registry import resolve_model

    entry = get_bundled(name)
    if entry is not None and (entry.format != "gguf" or entry.kind == "embedding"):
        raise ModelLoadError(f"bundled model {name!r} is an embedding model, not a base to fine-tune")
    try:
        ref = resolve_model(name)
    except NotFoundError:
        if Path(name).suffix == ".gguf" or os.sep in name:
            raise NotFoundError(
                f"base model path {name!r} does not exist (expected a .gguf file or a model dir)"
            ) from None
        names = [m.name for m in bundled_models() if m.kind != "embedding"]
        err = did_you_mean(name, names, kind="base model")
        raise NotFoundError(f"{err} (or give a .gguf file or a transformers model directory)") from None
    if ref.is_remote or ref.path is None:
        raise NotFoundError(
            f"base model {name!r} is a remote endpoint; training needs local weights (a bundled name, a .gguf "
            "file or a transformers model directory)"
        )
    weights = ref.path / ref.gguf_file if ref.gguf_file else ref.path
    if ref.bundled:
        return BaseRef(name=ref.name, kind="gguf", path=weights)
    kind: Literal["gguf", "hf"] = "gguf" if ref.backend == "llamacpp" or ref.gguf_file else "hf"
    return BaseRef(name=name, kind=kind, path=weights.resolve())


def _cache_dir(ref: BaseRef) -> Path:
    st = ref.path.stat()
    key = hashlib.sha256(f"{ref.path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cadre_home() / "cache" / "bases" / f"{ref.path.stem}-{key}"


def _hf_dir(ref: BaseRef) -> Path:
    """A transformers directory for ``ref``: the directory itself, or the cached dequantized GGUF."""
    if ref.kind == "hf":
        return ref.path
    cache = _cache_dir(ref)
    if (cache / "config.json").is_file():
        return cache
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(ref.path.parent), gguf_file=ref.path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(ref.path.parent), gguf_file=ref.path.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(f"cannot load GGUF base {str(ref.path)!r} into transformers: {err}") from None
    tmp = cache.with_name(f".tmp-{cache.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # save_pretrained refuses GGUF-loaded models (their "quantizer" is not serializable): write the
    # dequantized weights and a plain config ourselves.
    from safetensors.torch import save_model

    tmp.mkdir(parents=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tok.save_pretrained(tmp)
    (tmp / "cadre_source.json").write_text(json.dumps({"gguf": str(ref.path)}), encoding="utf-8")
    try:
        os.replace(tmp, cache)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def load_tokenizer(ref: BaseRef) -> Any:
    """The base's tokenizer (with its chat template); pad = eos when the model has no pad token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_hf_dir(ref)))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        raise ModelLoadError(
            f"base {ref.name!r} has no chat template; train from an instruction-tuned model or one whose "
            "tokenizer defines `chat_template`"
        )
    return tok


def load_base_model(ref: BaseRef, *, device: str = "cpu", qlora: bool = False) -> Any:
    """The base as a ``*ForCausalLM`` in fp32 (or 4-bit NF4 with ``qlora`` on CUDA)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if qlora:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise ModelLoadError(
                "--qlora needs bitsandbytes on a CUDA machine: pip install 'cadre[gpu]'"
            ) from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": torch.device(device).index or 0}  # this process's GPU under DDP
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(str(_hf_dir(ref)), **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load base {ref.name!r}: {err}") from None
    if not qlora:
        model.to(device)
    return model


def describe_base(ref: BaseRef, model_config: Any) -> BaseInfo:
    """Architecture facts for export: llama.cpp's arch name and the head counts (for the q/k permutation)."""
    arch = model_config.model_type
    ctx = int(getattr(model_config, "max_position_embeddings", 0) or 0)
    if ref.kind == "gguf":
        arch = read_gguf_header(ref.path).metadata.get("general.architecture", arch)
    n_head = int(model_config.num_attention_heads)
    n_head_kv = int(getattr(model_config, "num_key_value_heads", None) or n_head)
    return BaseInfo(
        name=ref.name,
        kind=ref.kind,
        path=str(ref.path),
        architecture=str(arch),
        n_head=n_head,
        n_head_kv=n_head_kv,
        context_length=ctx,
    )
