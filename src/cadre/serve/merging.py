"""Serving a specialist from its base with the adapter folded in, and the engine facts the server reports.

A specialist that is the only user of its base pays the adapter tax (two extra matmuls per adapted weight per
token) for nothing: no other adapter shares that model. :func:`merge_plan` decides from the spec's ``merge``
field; :func:`merged_model` writes the merged GGUF once and caches it under ``$CADRE_HOME/merged/`` by the
content hash of the base and the adapter, so a restart (or a reload with the same files) reuses it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from cadre.ecosystem.spec import EcosystemSpec, SpecialistSpec, Toggle
from cadre.errors import CadreError
from cadre.paths import cadre_home
from cadre.runtime.adapter_tax import adapter_shape, adapter_tax
from cadre.runtime.gguf_merge import merge_gguf_adapter
from cadre.runtime.registry import resolve_model

__all__ = ["MERGE_QUANT", "EngineFacts", "engine_facts", "lookup_option", "merge_plan", "merged_model"]

log = logging.getLogger("cadre.serve")

MERGE_QUANT = "Q8_0"
"""Tensor type of the adapted weights in a merged file (the others keep the base's: see gguf_merge)."""
_MERGE_VERSION = (
    "2"  # bump when the merged file's content would change for the same inputs (2: cadre.prompt.*)
)


@dataclass(frozen=True)
class EngineFacts:
    """How a specialist runs: merged or over an adapter, the adapter's shape and its measured tax."""

    merged: bool = False
    shape: str = ""  # e.g. "r16 on all 7 projections (30 layers)"
    tax: float | None = None  # base ÷ with-adapter decode speed of this shape unmerged (None: not measured)
    reason: str = ""  # why merged or not

    @property
    def paid_tax(self) -> float | None:
        """The tax this specialist pays as served: 1 when merged."""
        return 1.0 if self.merged else self.tax

    def describe(self) -> str:
        """One line for the startup log."""
        tax = "not measured for this shape" if self.tax is None else f"{self.tax:.2f}x"
        if self.merged:
            return (
                f"merged into its base ({self.reason}): no adapter tax (adapter {self.shape}, {tax} unmerged)"
            )
        if not self.shape:
            return f"unmerged adapter ({self.reason})"
        return f"unmerged adapter {self.shape} ({self.reason}): adapter tax {tax}"


def lookup_option(spec: EcosystemSpec, s: SpecialistSpec | None, model: str) -> bool | None:
    """The ``prompt_lookup=`` value for the engine: the specialist's, else the model's, else None (inherit)."""
    model_value = spec.model_options(model).prompt_lookup
    value: Toggle = s.prompt_lookup if s is not None and s.prompt_lookup != "inherit" else model_value
    return None if value == "inherit" else value == "on"


def merge_plan(spec: EcosystemSpec, s: SpecialistSpec, adapter: Path) -> tuple[bool, str]:
    """(merge?, why): ``always``/``never`` as written; ``auto`` merges when the specialist is alone on its base.

    Only a GGUF adapter over a llama.cpp base can be merged here; otherwise the reason says what was found.
    """
    if s.merge == "never":
        return False, "merge: never"
    if s.merge == "auto" and spec.shares_base(s):
        return False, "its base is shared with another model (merge: auto)"
    if adapter.is_dir():
        return False, "the adapter is a PEFT folder; export it with `cadre export DIR --format gguf-adapter`"
    try:
        ref = resolve_model(s.base)
    except CadreError as err:
        return False, f"the base could not be resolved ({err})"
    if ref.backend != "llamacpp" or ref.path is None:
        return False, f"the base runs on {ref.backend}, and only llama.cpp GGUF bases are merged"
    return True, "merge: always" if s.merge == "always" else "the only user of its base (merge: auto)"


def _digest(*paths: Path) -> str:
    h = hashlib.sha256(f"cadre-merged-{_MERGE_VERSION}-{MERGE_QUANT}".encode())
    for p in paths:
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:32]


def merged_model(base: str, adapter: Path) -> Path:
    """The merged GGUF of ``base`` + ``adapter``, written on first use to ``$CADRE_HOME/merged/<hash>.gguf``.

    Raises:
        ModelLoadError: the adapter does not fit the base (or either file is unreadable).
    """
    ref = resolve_model(base)
    base_path = ref.local_path("a merged specialist")
    out = cadre_home() / "merged" / f"{_digest(base_path, adapter)}.gguf"
    if out.is_file():
        return out
    log.info("merging adapter %s into %s (once; cached as %s)", adapter.name, base_path.name, out)
    return merge_gguf_adapter(base_path, adapter, out)


def engine_facts(adapter: Path, *, merged: bool, reason: str) -> EngineFacts:
    """The facts of a GGUF adapter (shape from its header; tax from the measured table)."""
    try:
        shape = adapter_shape(adapter)
    except CadreError:
        return EngineFacts(merged=merged, reason=reason)
    return EngineFacts(merged=merged, shape=shape.label, tax=adapter_tax(shape), reason=reason)
