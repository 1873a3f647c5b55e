"""The routing encoder on ONNX Runtime: the same transformer exported once to ONNX, fp32 or dynamic int8.

For one short request, torch's eager forward spends most of its time in per-op Python and dispatch overhead;
ONNX Runtime runs the whole graph in C++ (on the bundled MiniLM: about 6 ms of CPU per request at fp32 and 3 ms
at int8, against 18 ms for torch eager, see docs/route.md). The transformer is exported with
``torch.onnx.export`` (inputs ``input_ids`` and ``attention_mask``, dynamic batch and sequence axes, output the
last hidden state); int8 is ONNX Runtime's dynamic quantisation of the weights
(``onnxruntime.quantization.quantize_dynamic``, QInt8). Pooling (masked mean, unit length) is done here in
NumPy, as ``LeanEmbedder`` does it in torch, so fp32 rows match sentence-transformers' to cosine 1 - 1e-6.

Exports are cached under ``$CADRE_HOME/cache/onnx/<sha256 of the weights>-<precision>.onnx`` (a fine-tuned
encoder has its own digest), so each model is exported once per machine.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import ConfigError, ModelLoadError
from cadre.route.batching import encode_sorted

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["OnnxEmbedder", "onnx_available", "onnx_embedder"]


def onnx_available() -> bool:
    """Whether ONNX Runtime (and onnx, for int8) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_embedder(
    transformer: Any, tokenizer: Any, *, precision: str, model_id: str, max_seq_length: int, lowercase: bool
) -> OnnxEmbedder:
    """An ``OnnxEmbedder`` for a Hugging Face ``transformer`` (exported on first use, then cached on disk).

    Raises:
        ConfigError: bf16 (ONNX Runtime's CPU kernels have no bf16 path here) or ONNX Runtime is not installed.
        ModelLoadError: the export or the quantisation failed.
    """
    if precision not in ("fp32", "int8"):
        raise ConfigError(f"the onnx runtime takes embedding_precision fp32 or int8, not {precision!r}")
    if not onnx_available():
        raise ConfigError("embedding_runtime onnx needs onnxruntime and onnx: pip install onnxruntime onnx")
    path = _export(transformer, precision)
    return OnnxEmbedder(
        _session(str(path)),
        tokenizer,
        model_id=model_id,
        max_seq_length=max_seq_length,
        lowercase=lowercase,
        dim=int(transformer.config.hidden_size),
    )


def _cache_dir() -> Path:
    from cadre.paths import cadre_home

    out = cadre_home() / "cache" / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    return out


_EXPORT_LOCK = threading.Lock()


def _export(transformer: Any, precision: str) -> Path:
    from cadre.route.weights import weights_digest

    digest = weights_digest(transformer)[:24]
    target = _cache_dir() / f"{digest}-{precision}.onnx"
    with _EXPORT_LOCK:
        if target.is_file():
            return target
        fp32 = _cache_dir() / f"{digest}-fp32.onnx"
        if not fp32.is_file():
            _write_atomically(fp32, lambda tmp: _torch_export(transformer, tmp))
        if precision == "int8":
            _write_atomically(target, lambda tmp: _quantize(fp32, tmp))
    return target


def _write_atomically(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except Exception as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, ModelLoadError):
            raise
        raise ModelLoadError(
            f"cannot build the ONNX encoder {target.name}: {type(err).__name__}: {err}"
        ) from None


def _torch_export(transformer: Any, out: Path) -> None:
    import torch

    class _Hidden(torch.nn.Module):  # keyword arguments only: transformers' forward takes them by name
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.ones((1, 8), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Hidden(transformer).eval(),
            (ids, torch.ones_like(ids)),
            str(out),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
        )


def _quantize(src: Path, out: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its pre-processing hint
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)


def _session(path: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # routing is one short request at a time: one core, no thread hand-offs
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own error types for unreadable graphs
        raise ModelLoadError(f"cannot load the ONNX encoder {path}: {err}; delete it to rebuild it") from None


class OnnxEmbedder:
    """Tokenizer -> ONNX Runtime session -> masked mean -> unit rows (see the module docstring)."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        *,
        model_id: str,
        max_seq_length: int,
        lowercase: bool,
        dim: int,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_seq_length = max_seq_length
        self.lowercase = lowercase
        self.dim = dim

    def encode(self, texts: Sequence[str] | str, *, batch_size: int = 64) -> NDArray[np.float32]:
        """Embed ``texts`` into (n, dim) unit rows; batches are sorted by length so padding stays small."""
        return encode_sorted(
            texts, self._forward, dim=self.dim, batch_size=batch_size, lowercase=self.lowercase
        )

    def _forward(self, batch: list[str]) -> NDArray[np.float32]:
        enc = self.tokenizer(
            batch,
            padding=len(batch) > 1,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="np",
        )
        mask = enc["attention_mask"].astype(np.int64)
        (hidden,) = self.session.run(
            None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": mask}
        )  # (b, s, d)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)  # (b, d)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled, dtype=np.float32)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(model_id={self.model_id!r}, max_seq_length={self.max_seq_length})"
