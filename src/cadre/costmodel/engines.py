"""Which efficiency factors a prediction uses: the ideal roofline, a named engine's fitted factors, or ``auto``
(the engine the hardware family implies), with that engine's out-of-sample validation error beside it."""

from __future__ import annotations

from dataclasses import dataclass

from cadre.costmodel.hardware import Hardware
from cadre.costmodel.roofline import Efficiency

__all__ = ["IDEAL_ENGINES", "EngineChoice", "engine_for_hardware", "resolve_engine"]

IDEAL_ENGINES = ("roofline", "ideal")


@dataclass(frozen=True)
class EngineChoice:
    """The engine a prediction assumes, why, and how far that engine's predictions were off on data it never saw."""

    requested: str
    engine: str  # "roofline" (ideal) or a fitted engine
    efficiency: Efficiency
    ideal: bool
    reason: str
    loso_median_abs_pct_error: float | None = None  # leave-one-source-out median |error| of this engine
    validation_points: int = 0

    @property
    def label(self) -> str:
        """``roofline (ideal bound)`` or ``trt-llm (fitted; ±14% out of sample, n=49)``."""
        if self.ideal:
            return "roofline (ideal bound: an upper limit on speed)"
        err = "" if self.loso_median_abs_pct_error is None else f"±{self.loso_median_abs_pct_error:.0f}% "
        return f"{self.engine} (fitted; {err}median error out of sample, n={self.validation_points})"


def engine_for_hardware(hw: Hardware) -> str | None:
    """The engine whose published measurements fit this device family, or None when none were published.

    Apple silicon: llama.cpp-metal; NVIDIA GeForce cards: llama.cpp-cuda; NVIDIA datacenter cards: trt-llm
    (the validation set's serving engine on Hopper, Ampere and Ada L40S); CPUs and AMD: none.
    """
    if hw.vendor == "apple":
        return "llama.cpp-metal"
    if hw.vendor == "nvidia":
        consumer = hw.name.startswith("rtx-") or "geforce" in hw.display_name.lower()
        return "llama.cpp-cuda" if consumer else "trt-llm"
    return None


def resolve_engine(engine: str, hardware: Hardware, *, with_error: bool = True) -> EngineChoice:
    """``roofline``/``ideal``: no losses; ``auto``: the family's engine (ideal when none); else the named engine.

    ``with_error`` adds the engine's leave-one-source-out error (a one-off fit of the validation set, cached).
    """
    from cadre.costmodel.validation import engine_efficiency, engine_errors

    name = engine.strip().lower()
    if name in IDEAL_ENGINES:
        return EngineChoice(engine, "roofline", Efficiency(), True, "the ideal roofline was asked for")
    if name == "auto":
        fitted = engine_for_hardware(hardware)
        if fitted is None:
            return EngineChoice(
                engine,
                "roofline",
                Efficiency(),
                True,
                f"no published measurements for {hardware.vendor} {hardware.family} hardware: the ideal bound",
            )
        reason = f"auto: {hardware.family} hardware implies {fitted}"
    else:
        fitted, reason = name, "named"
    eff = engine_efficiency(fitted)
    stats = engine_errors().get(fitted, {}) if with_error else {}
    err = stats.get("loso_median_abs_pct_error")
    return EngineChoice(
        engine, fitted, eff, False, reason, None if err is None else float(err), int(stats.get("n", 0))
    )
