"""``cadre cost hardware`` and ``cadre cost models``: the two catalogs the cost model reads."""

from __future__ import annotations

from cadre.cli.cost._options import JsonOpt, gigabytes
from cadre.cli.output import console, print_json

__all__ = ["list_hardware", "list_models"]


def list_hardware(json_out: JsonOpt = False) -> None:
    """The hardware catalog."""
    from rich.table import Table

    from cadre.costmodel import hardware_catalog

    hws = hardware_catalog()
    if json_out:
        print_json(hws)
        return
    t = Table(title="hardware catalog (spec figures; `local` = this machine)")
    for col in ("name", "device", "memory", "bandwidth", "BF16/FP16 dense", "FP8 dense", "TDP", "$/h"):
        t.add_column(col, justify="right")
    for h in hws:
        fp8 = h.peak_flops.get("fp8")
        t.add_row(
            h.name,
            h.display_name,
            gigabytes(h.memory_bytes),
            f"{h.bandwidth() / 1e12:.3g} TB/s",
            f"{h.flops('bf16') / 1e12:.4g} TF",
            f"{fp8.dense / 1e12:.4g} TF" if fp8 else "-",
            f"{h.tdp_watts:.0f} W",
            f"{h.price_per_hour:.2f}",
        )
    console.print(t)


def list_models(json_out: JsonOpt = False) -> None:
    """The model-architecture catalog."""
    from rich.table import Table

    from cadre.costmodel import model_catalog

    entries = model_catalog()
    if json_out:
        print_json([e.to_json() for e in entries])
        return
    t = Table(title="model catalog (HF config.json fields)")
    for col in ("name", "params", "active", "layers", "hidden", "attention", "KV B/token (fp16)"):
        t.add_column(col, justify="right")
    for e in entries:
        m = e.arch
        t.add_row(
            m.name,
            f"{m.total_params() / 1e9:.2f} B",
            f"{m.active_params() / 1e9:.2f} B",
            str(m.num_layers),
            str(m.hidden_size),
            m.attention_kind,
            f"{e.kv_bytes_per_token:,.0f}",
        )
    console.print(t)
