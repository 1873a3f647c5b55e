"""Bytes per parameter of weight formats (FP16/FP8/INT8/NF4 and the GGUF block formats).

A quantized file is not all the bits it is named after: block formats carry scales (Q4_0 is 4.5 bits per
weight, Q4_1 is 5.0), and mixed formats (Q4_K_M) keep some tensors at higher precision.
"""

from __future__ import annotations

from cadre.errors import did_you_mean

__all__ = [
    "PRECISIONS",
    "bits_per_param",
    "bytes_per_param",
    "compute_precision",
    "normalize_precision",
    "quantized_weight_bytes",
]

# GGUF block formats: (weights per block, bytes per block), as in gguf.constants.GGML_QUANT_SIZES
# (ggml/src/ggml-common.h). bits per weight = 8 * bytes / block.
_GGUF_BLOCKS: dict[str, tuple[int, int]] = {
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
    "q8_0": (32, 34),
    "q2_k": (256, 84),
    "q3_k": (256, 110),
    "q4_k": (256, 144),
    "q5_k": (256, 176),
    "q6_k": (256, 210),
    "iq4_xs": (256, 136),
    "iq4_nl": (32, 18),
    "mxfp4": (32, 17),
}

# Mixed GGUF "file types": average bits per weight over a whole 7B model, from llama.cpp's quantize
# table (tools/quantize/README: e.g. Q4_K_M 3.80 GiB for 6.74 B weights = 4.84 bpw).
_GGUF_MIXED_BPW: dict[str, float] = {
    "q2_k_s": 2.96,
    "q3_k_s": 3.50,
    "q3_k_m": 3.91,
    "q3_k_l": 4.27,
    "q4_k_s": 4.58,
    "q4_k_m": 4.84,
    "q5_k_s": 5.54,
    "q5_k_m": 5.69,
    "q6_k_m": 6.56,
}

_PLAIN_BITS: dict[str, float] = {
    "fp32": 32.0,
    "fp16": 16.0,
    "bf16": 16.0,
    "fp8": 8.0,
    "int8": 8.0,
    "int4": 4.0,
    # NF4 with double quantization: 4 bits + 8-bit absmax per 64 weights + 32-bit per 256 blocks
    # (Dettmers et al. 2023, QLoRA §3: 0.127 bits of constants per parameter).
    "nf4": 4.0 + 8.0 / 64 + 32.0 / (64 * 256),
}

_ALIASES = {
    "f32": "fp32",
    "f16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "float32": "fp32",
    "e4m3": "fp8",
    "fp8_e4m3": "fp8",
    "q8": "int8",
    "int4_awq": "int4",
}

PRECISIONS: tuple[str, ...] = tuple(sorted({*_PLAIN_BITS, *_GGUF_BLOCKS, *_GGUF_MIXED_BPW}))


def normalize_precision(name: str) -> str:
    """Canonical lower-case precision name; raises NotFoundError listing close matches."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in PRECISIONS:
        raise did_you_mean(name, PRECISIONS, kind="precision")
    return key


def bits_per_param(precision: str) -> float:
    """Average stored bits per weight of ``precision`` (including block scales)."""
    p = normalize_precision(precision)
    if p in _PLAIN_BITS:
        return _PLAIN_BITS[p]
    if p in _GGUF_BLOCKS:
        block, nbytes = _GGUF_BLOCKS[p]
        return 8.0 * nbytes / block
    return _GGUF_MIXED_BPW[p]


def bytes_per_param(precision: str) -> float:
    """Average stored bytes per weight of ``precision``."""
    return bits_per_param(precision) / 8.0


def quantized_weight_bytes(n_params: float, precision: str) -> float:
    """Bytes of ``n_params`` weights stored as ``precision``."""
    if n_params < 0:
        from cadre.errors import ConfigError

        raise ConfigError(f"n_params must be >= 0, got {n_params}")
    return n_params * bytes_per_param(precision)


def compute_precision(weight_precision: str) -> str:
    """The arithmetic the matmuls run in: FP8/INT8 natively, everything weight-only is dequantized to FP16."""
    p = normalize_precision(weight_precision)
    if p in ("fp32", "bf16", "fp16", "fp8", "int8"):
        return p
    return "fp16"
