"""Read a GGUF file's header (metadata + tensor shapes) without loading weights, to fail early and clearly.

Used to reject a missing/corrupt model file and an adapter made for another base *before* llama.cpp loads
them (llama.cpp would otherwise abort or print a C-level error), and by ``cadre models`` for sizes/types.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadre.errors import ModelLoadError

__all__ = ["GGUFInfo", "check_adapter_fits", "read_gguf"]

_MAGIC = b"GGUF"


@dataclass
class GGUFInfo:
    path: Path
    file_type: str  # "model" or "adapter"
    architecture: str
    metadata: dict[str, Any]
    # GGUF order: ne[0] is the input (row) dimension, e.g. a (n_out, n_in) weight is stored as (n_in, n_out).
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tensor_types: dict[str, str] = field(default_factory=dict)
    n_params: int = 0
    file_size: int = 0

    @property
    def main_quantization(self) -> str:
        """The tensor type holding the most parameters (what a user calls the quantization)."""
        counts: Counter[str] = Counter()
        for name, shape in self.tensors.items():
            n = 1
            for d in shape:
                n *= d
            counts[self.tensor_types[name]] += n
        return counts.most_common(1)[0][0] if counts else "?"

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None


_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """A little-endian reader over a memory-mapped GGUF header (spec: ggml/docs/gguf.md)."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.pos = 0

    def scalar(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > len(self.buf) - self.pos:
            raise ValueError("string runs past the end of the file")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, n = self.scalar("<I"), self.scalar("<Q")
            if etype == _STRING:
                for _ in range(n):  # token lists: skipped, not kept
                    self.pos += 8 + struct.unpack_from("<Q", self.buf, self.pos)[0]
            elif etype in _SCALAR:
                self.pos += n * struct.calcsize(_SCALAR[etype])
            else:
                for _ in range(n):
                    self.value(etype)
            if self.pos > len(self.buf):
                raise ValueError("array runs past the end of the file")
            return None
        if vtype not in _SCALAR:
            raise ValueError(f"unknown metadata value type {vtype}")
        return self.scalar(_SCALAR[vtype])


def _type_name(code: int) -> str:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(code).name
    except ValueError:
        return f"type{code}"


def read_gguf(path: str | Path, *, what: str = "model") -> GGUFInfo:
    """Parse the header of a GGUF file (metadata and tensor shapes; no weights are read).

    Raises:
        ModelLoadError: the file is missing, not GGUF, or truncated/corrupt.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelLoadError(f"{what} file {str(p)!r} does not exist; check the path")
    size = p.stat().st_size
    with p.open("rb") as fh:
        magic = fh.read(4)
        if magic != _MAGIC:
            raise ModelLoadError(
                f"{what} file {p} is not a GGUF file (starts with {magic!r}); "
                "convert it to GGUF or pass the right file"
            )
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                metadata, tensors, types, data_end = _parse(mm)
        except (ValueError, struct.error, OverflowError) as err:
            raise ModelLoadError(
                f"{what} file {p} is corrupt or truncated ({err}); re-copy or re-export it"
            ) from None
    if data_end > size:
        raise ModelLoadError(
            f"{what} file {p} is truncated ({size} bytes, its tensors need {data_end}); re-copy or re-export it"
        )
    n_params = sum(math.prod(shape) for shape in tensors.values())
    return GGUFInfo(
        path=p,
        file_type=str(metadata.get("general.type") or "model"),
        architecture=str(metadata.get("general.architecture") or "?"),
        metadata=metadata,
        tensors=tensors,
        tensor_types=types,
        n_params=n_params,
        file_size=size,
    )


def _parse(buf: Any) -> tuple[dict[str, Any], dict[str, tuple[int, ...]], dict[str, str], int]:
    cur = _Cursor(buf)
    cur.pos = 4
    version = cur.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ValueError("implausible header counts")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar("<I"))
    tensors: dict[str, tuple[int, ...]] = {}
    types: dict[str, str] = {}
    extents: list[tuple[int, int, int]] = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("<I")
        if n_dims > 8:
            raise ValueError(f"tensor {name} has {n_dims} dims")
        shape = tuple(cur.scalar("<Q") for _ in range(n_dims))
        ttype = cur.scalar("<I")
        offset = cur.scalar("<Q")
        tensors[name] = shape
        types[name] = _type_name(ttype)
        extents.append((offset, ttype, math.prod(shape)))
    alignment = int(metadata.get("general.alignment") or 32)
    data_start = -(-cur.pos // alignment) * alignment
    data_end = data_start
    if extents:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        offset, ttype, n = max(extents)
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
            data_end = data_start + offset + n // block * type_size
        except (ValueError, KeyError):
            data_end = data_start + offset
    return metadata, tensors, types, data_end


def check_adapter_fits(adapter: GGUFInfo, base: GGUFInfo) -> None:
    """Check that a GGUF LoRA adapter was made for ``base`` (architecture and every tensor shape).

    Raises:
        ModelLoadError: naming the first mismatch and the fix.
    """
    name = adapter.path.name
    if adapter.file_type != "adapter" or adapter.metadata.get("adapter.type") not in ("lora", None):
        raise ModelLoadError(
            f"{adapter.path} is not a LoRA adapter (general.type={adapter.file_type!r}); export one with "
            "`cadre export` or pass the adapter GGUF"
        )
    if adapter.architecture != base.architecture:
        raise ModelLoadError(
            f"adapter {name} was made for a {adapter.architecture!r} model but the base is {base.architecture!r} "
            f"({base.path.name}); load it over the base it was trained on"
        )
    pairs = 0
    for tname, a_shape in adapter.tensors.items():
        if not tname.endswith(".lora_a"):
            continue
        target = tname.removesuffix(".lora_a")
        b_shape = adapter.tensors.get(target + ".lora_b")
        base_shape = base.tensors.get(target)
        if b_shape is None:
            raise ModelLoadError(f"adapter {name} has {tname} but no {target}.lora_b; the file is incomplete")
        if base_shape is None:
            raise ModelLoadError(
                f"adapter {name} targets {target}, which the base {base.path.name} does not have; "
                "it was made for another base model"
            )
        # GGUF order: A is (n_in, r), B is (r, n_out), the base weight is (n_in, n_out).
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[1] != b_shape[0]:
            raise ModelLoadError(
                f"adapter {name}: {target} lora_a {a_shape} and lora_b {b_shape} disagree on rank"
            )
        if a_shape[0] != base_shape[0] or b_shape[1] != base_shape[1]:
            raise ModelLoadError(
                f"adapter {name} was made for another base: {target} expects a weight of shape "
                f"({b_shape[1]}, {a_shape[0]}) but {base.path.name} has ({base_shape[1]}, {base_shape[0]}); "
                "load it over the base it was trained on"
            )
        pairs += 1
    if pairs == 0:
        raise ModelLoadError(f"adapter {name} holds no LoRA tensors (*.lora_a/*.lora_b); re-export it")
