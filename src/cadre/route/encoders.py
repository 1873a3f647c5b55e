"""The router's embedder: the transformer run directly (lean path), at a chosen precision and sequence length.

Routing embeds one short request at a time, so per-call overhead counts as much as the forward pass.
``LeanEmbedder`` runs a mean-pooling sentence-transformers model (the bundled MiniLM, or a fine-tuned copy)
directly: tokenizer (no padding for a single text) -> transformer under ``torch.inference_mode`` -> masked mean
-> unit length. It gives the same rows as ``SentenceTransformer.encode`` (cosine 1 - 1e-6), so the model id is
unchanged at full length and fp32. Models of another shape (CLS pooling, dense layers) keep the
sentence-transformers path.

An encoder's *form* (``EncoderForm``: runtime, precision, sequence length) may change its numbers, so it is part
of its id (a router refuses another form): ``+int8`` (PyTorch dynamic int8 quantisation of the linear layers;
embeddings within cosine ~0.95 of fp32), ``+bf16`` (within ~0.999), ``+onnx-int8`` (ONNX Runtime's int8, see
``cadre.route.onnx_encoder``), and ``+len<N>`` (the tokenizer truncates requests to N tokens; short requests are
unchanged, long ones are embedded from their first N tokens only, which bounds the worst-case latency). ONNX
Runtime at fp32 gives the same numbers as torch and keeps the id.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cadre.errors import ConfigError, ModelLoadError
from cadre.route.batching import encode_sorted
from cadre.route.protocol import Embedder

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "PRECISIONS",
    "RUNTIMES",
    "EncoderForm",
    "LeanEmbedder",
    "Precision",
    "base_model_id",
    "get_route_embedder",
    "reduce_precision",
]

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
RUNTIMES: tuple[str, ...] = ("torch", "onnx")


@dataclass(frozen=True)
class EncoderForm:
    """How the routing encoder runs: ``runtime`` (torch | onnx), ``precision``, ``max_seq_length`` (None = full)."""

    runtime: str = "torch"
    precision: str = "fp32"
    max_seq_length: int | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"unknown embedding runtime {self.runtime!r}; use one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown embedding precision {self.precision!r}; use one of {', '.join(PRECISIONS)}"
            )
        if self.max_seq_length is not None and self.max_seq_length < 8:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} is too short to route on; use 8 or more (or null)"
            )

    @classmethod
    def of(cls, spec: Any) -> EncoderForm:
        """The form a ``RouterSpec`` asks for."""
        return cls(spec.embedding_runtime, spec.embedding_precision, spec.max_seq_length)

    @property
    def suffix(self) -> str:
        """What the form adds to the model id: ``""`` for fp32 at full length, else ``+int8``, ``+len64``..."""
        if self.precision == "fp32":
            head = ""
        else:
            head = f"+{self.runtime}-{self.precision}" if self.runtime != "torch" else f"+{self.precision}"
        return head + (f"+len{self.max_seq_length}" if self.max_seq_length else "")

    @property
    def name(self) -> str:
        """Short display name: ``torch-fp32/full``, ``onnx-int8/len64``..."""
        length = f"len{self.max_seq_length}" if self.max_seq_length else "full"
        return f"{self.runtime}-{self.precision}/{length}"


def base_model_id(model_id: str, form: EncoderForm) -> str:
    """``model_id`` without its form suffix (the id of the encoder's weights)."""
    return model_id.removesuffix(form.suffix)


def get_route_embedder(name: str | None = None, form: EncoderForm | None = None) -> Embedder:
    """The embedder for routing: ``name`` as ``cadre.runtime.embeddings.get_embedder`` takes it, in ``form``.

    Raises:
        ConfigError: a bad form, or the onnx runtime without onnxruntime installed.
        ModelLoadError: the model cannot be loaded (or exported to ONNX).
    """
    from cadre.runtime.embeddings import DEFAULT_EMBEDDER, get_embedder

    base = get_embedder(name or DEFAULT_EMBEDDER)
    return _route_form(name or DEFAULT_EMBEDDER, form or EncoderForm(), base.model_id)


@lru_cache(maxsize=16)
def _route_form(name: str, form: EncoderForm, base_id: str) -> Embedder:
    from cadre.runtime.embeddings import get_embedder

    # the runtime's shared weights, run lean: fp32 uses them as they are, bf16 / int8 convert a copy
    st_model = getattr(get_embedder(name), "_model", None) or _load(name)
    return reduce_precision(st_model, form, base_id)


def _load(name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    from cadre.runtime.bundled import bundled_model_path, get_bundled

    path = bundled_model_path(name) if get_bundled(name) is not None else Path(name).expanduser()
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"cannot load embedding model from {path}: {err}; reinstall its package"
        ) from None
    model.eval()
    return model


def reduce_precision(model: Any, form: EncoderForm, base_id: str) -> Embedder:
    """An embedder over a loaded sentence-transformers ``model`` in ``form``; its id is ``base_id`` + the form.

    torch fp32 uses ``model`` as it is (shared, not modified); bf16 and int8 work on a copy; onnx exports it.
    """
    model_id = base_id + form.suffix
    transformer = _mean_pooled_transformer(model)
    if transformer is None:  # another model shape: sentence-transformers' own encode, full length, torch
        from cadre.runtime.embeddings import Embedder as RuntimeEmbedder

        if form.max_seq_length or form.runtime != "torch":
            raise ConfigError(
                f"max_seq_length and the onnx runtime need a mean-pooling embedding model; {base_id} is not one"
            )
        if form.precision != "fp32":
            model = _converted(copy.deepcopy(model), form.precision)
        return _Float32Rows(RuntimeEmbedder(model, model_id=model_id))
    limit = int(getattr(model, "max_seq_length", 0) or 512)
    length = min(limit, form.max_seq_length) if form.max_seq_length else limit
    lowercase = bool(getattr(model[0], "do_lower_case", False))
    if form.runtime == "onnx":
        from cadre.route.onnx_encoder import onnx_embedder

        return onnx_embedder(
            transformer,
            model.tokenizer,
            precision=form.precision,
            model_id=model_id,
            max_seq_length=length,
            lowercase=lowercase,
        )
    if form.precision != "fp32":
        transformer = _converted(copy.deepcopy(transformer), form.precision)
    return LeanEmbedder(
        transformer, model.tokenizer, model_id=model_id, max_seq_length=length, lowercase=lowercase
    )


def _converted(module: Any, precision: str) -> Any:
    import torch

    if precision == "bf16":
        return module.to(torch.bfloat16)
    with warnings.catch_warnings():  # the eager dynamic-quantisation API warns about its future removal
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def _mean_pooled_transformer(model: Any) -> Any:
    """The Hugging Face transformer inside ``model`` when ``model`` is Transformer -> mean Pooling [-> Normalize]."""
    try:
        modules = list(model)
        names = [type(m).__name__ for m in modules]
        pooling = modules[1].get_config_dict()
    except (TypeError, IndexError, AttributeError):
        return None
    mean = pooling.get("pooling_mode") == "mean" or (
        pooling.get("pooling_mode_mean_tokens") is True
        and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens"))
    )
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]) or not mean:
        return None
    return getattr(modules[0], "auto_model", None)


class LeanEmbedder:
    """Tokenizer -> transformer -> masked mean -> unit rows, with no per-call machinery (see the module doc)."""

    def __init__(
        self,
        transformer: Any,
        tokenizer: Any,
        *,
        model_id: str,
        max_seq_length: int,
        lowercase: bool = False,
    ) -> None:
        self.transformer = transformer.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_seq_length = max_seq_length
        self.lowercase = lowercase
        self.dim = int(transformer.config.hidden_size)
        self._lock = threading.Lock()  # the module may be shared with the runtime's embedder

    def encode(self, texts: Sequence[str] | str, *, batch_size: int = 64) -> NDArray[np.float32]:
        """Embed ``texts`` into (n, dim) unit rows; batches are sorted by length so padding stays small."""
        return encode_sorted(
            texts, self._forward, dim=self.dim, batch_size=batch_size, lowercase=self.lowercase
        )

    def _forward(self, batch: list[str]) -> NDArray[np.float32]:
        import torch

        enc = self.tokenizer(
            batch,
            padding=len(batch) > 1,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="pt",
        )
        with self._lock, torch.inference_mode():
            hidden = self.transformer(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).last_hidden_state  # (b, s, d)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, s, 1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (b, d)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=1)
        return np.ascontiguousarray(pooled.numpy(), dtype=np.float32)

    def __repr__(self) -> str:
        return f"LeanEmbedder(model_id={self.model_id!r}, max_seq_length={self.max_seq_length})"


class _Float32Rows:
    """Keeps the Embedder contract (float32 rows) whatever dtype the reduced model computes in."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> NDArray[np.float32]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.inner.encode(texts, batch_size=batch_size)
        return np.asarray(out, dtype=np.float32)
