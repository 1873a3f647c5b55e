"""Check a GGUF LoRA adapter against the GGUF base it is loaded over, before llama.cpp sees them.

llama.cpp would otherwise abort or print a C-level error; both headers come from
:func:`cadre.formats.read_gguf_header`.
"""

from __future__ import annotations

from cadre.errors import ModelLoadError
from cadre.formats import GGUFHeader

__all__ = ["check_adapter_fits"]


def check_adapter_fits(adapter: GGUFHeader, base: GGUFHeader) -> None:
    """Check that a GGUF LoRA adapter was made for ``base`` (architecture and every tensor shape).

    Raises:
        ModelLoadError: naming the first mismatch and the fix.
    """
    name = adapter.path.name
    if adapter.kind != "adapter" or adapter.metadata.get("adapter.type") not in ("lora", None):
        raise ModelLoadError(
            f"{adapter.path} is not a LoRA adapter (general.type={adapter.kind!r}); export one with "
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
