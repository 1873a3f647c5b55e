"""The one GGUF header reader: metadata and the tensor table of a GGUF file, read once, no weights loaded.

Spec: ggml/docs/gguf.md. The header is walked over a memory map (token lists are skipped, not decoded), so a
200 MB model is described in a fraction of a second. Used to reject a missing/corrupt file or an adapter made
for another base before llama.cpp sees it, to list bundled models, and to read an architecture for the cost
model and for export.
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

__all__ = ["GGUFHeader", "open_gguf_weights", "read_gguf_header"]

_MAGIC = b"GGUF"
# Arrays up to this length are kept in the metadata (per-layer head counts, ...); longer ones (token lists)
# are skipped.
_MAX_KEPT_ARRAY = 512


@dataclass
class GGUFHeader:
    """What a GGUF file says about itself."""

    path: Path
    kind: str  # general.type: "model" or "adapter"
    architecture: str  # general.architecture ("llama", "gemma3", ...), "?" when absent
    metadata: dict[str, Any]  # scalars, strings and short arrays by key
    # GGUF order: ne[0] is the input (row) dimension, e.g. a (n_out, n_in) weight is stored as (n_in, n_out).
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tensor_types: dict[str, str] = field(default_factory=dict)  # GGML type name per tensor ("Q4_K", "F32")
    tensor_bytes: dict[str, int] = field(default_factory=dict)
    n_params: int = 0
    file_size: int = 0

    def params_by_type(self) -> Counter[str]:
        """Parameters stored in each tensor type."""
        counts: Counter[str] = Counter()
        for name, shape in self.tensors.items():
            counts[self.tensor_types[name]] += math.prod(shape)
        return counts

    def bytes_by_type(self) -> Counter[str]:
        """Bytes stored in each tensor type."""
        counts: Counter[str] = Counter()
        for name, n in self.tensor_bytes.items():
            counts[self.tensor_types[name]] += n
        return counts

    @property
    def dominant_tensor_type(self) -> str:
        """The tensor type holding the most parameters ("?" for a file without tensors)."""
        counts = self.params_by_type()
        return counts.most_common(1)[0][0] if counts else "?"

    @property
    def quantization(self) -> str:
        """The file's quantization as llama.cpp names it (``general.file_type``: Q4_K_M, Q4_1, F16...).

        Not the dominant tensor type: a Q4_K_M file keeps its large embedding in Q8_0/Q6_K, which can hold most
        parameters of a small model. Files without ``general.file_type`` (adapters) fall back to that type.
        """
        code = self.metadata.get("general.file_type")
        if isinstance(code, int) and not isinstance(code, bool):
            from gguf import LlamaFileType

            try:
                ftype = LlamaFileType(code)
            except ValueError:
                ftype = None
            if ftype is not None and ftype is not LlamaFileType.GUESSED:
                return ftype.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        return self.dominant_tensor_type

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
_SKIPPED = object()


class _Cursor:
    """A little-endian reader over a memory-mapped GGUF header."""

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
            if n <= _MAX_KEPT_ARRAY:
                return [self.value(etype) for _ in range(n)]
            self._skip_array(etype, n)
            return _SKIPPED
        if vtype not in _SCALAR:
            raise ValueError(f"unknown metadata value type {vtype}")
        return self.scalar(_SCALAR[vtype])

    def _skip_array(self, etype: int, n: int) -> None:
        if etype == _STRING:
            for _ in range(n):
                self.pos += 8 + struct.unpack_from("<Q", self.buf, self.pos)[0]
        elif etype in _SCALAR:
            self.pos += n * struct.calcsize(_SCALAR[etype])
        else:
            for _ in range(n):
                self.value(etype)
        if self.pos > len(self.buf):
            raise ValueError("array runs past the end of the file")


def _type_name(code: int) -> str:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(code).name
    except ValueError:
        return f"type{code}"


def _tensor_bytes(ttype: int, n_elements: int) -> int | None:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
    except (ValueError, KeyError):
        return None
    return n_elements // block * type_size


def read_gguf_header(path: str | Path, *, what: str = "model") -> GGUFHeader:
    """Parse the header of a GGUF file (metadata and tensor table; no weights are read).

    Args:
        path: the ``.gguf`` file.
        what: how error messages name the file ("model", "adapter", ...).

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
                header, data_end = _parse(mm, p, size)
        except (ValueError, struct.error, OverflowError) as err:
            raise ModelLoadError(
                f"{what} file {p} is corrupt or truncated ({err}); re-copy or re-export it"
            ) from None
    if data_end > size:
        raise ModelLoadError(
            f"{what} file {p} is truncated ({size} bytes, its tensors need {data_end}); re-copy or re-export it"
        )
    return header


def _parse(buf: Any, path: Path, size: int) -> tuple[GGUFHeader, int]:
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
        value = cur.value(cur.scalar("<I"))
        if value is not _SKIPPED:
            metadata[key] = value
    header = GGUFHeader(
        path=path,
        kind=str(metadata.get("general.type") or "model"),
        architecture=str(metadata.get("general.architecture") or "?"),
        metadata=metadata,
        file_size=size,
    )
    extents: list[tuple[int, int, int]] = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("<I")
        if n_dims > 8:
            raise ValueError(f"tensor {name} has {n_dims} dims")
        shape = tuple(cur.scalar("<Q") for _ in range(n_dims))
        ttype = cur.scalar("<I")
        offset = cur.scalar("<Q")
        n = math.prod(shape)
        header.tensors[name] = shape
        header.tensor_types[name] = _type_name(ttype)
        header.tensor_bytes[name] = _tensor_bytes(ttype, n) or 0
        header.n_params += n
        extents.append((offset, ttype, n))
    alignment = int(metadata.get("general.alignment") or 32)
    data_start = -(-cur.pos // alignment) * alignment
    data_end = data_start
    if extents:
        offset, ttype, n = max(extents)
        data_end = data_start + offset + (_tensor_bytes(ttype, n) or 0)
    return header, data_end


def open_gguf_weights(path: str | Path, *, what: str = "model") -> Any:
    """The ``gguf`` package's reader over a whole file (typed fields and tensor data), for copying weights.

    Raises:
        ModelLoadError: the file is missing or not a readable GGUF file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelLoadError(f"{what} file {str(p)!r} does not exist; check the path")
    try:
        from gguf import GGUFReader

        return GGUFReader(str(p))
    except (ValueError, struct.error, OSError) as err:
        raise ModelLoadError(f"{what} file {p} is not a readable GGUF file ({err})") from None
