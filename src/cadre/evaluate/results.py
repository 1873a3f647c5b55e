"""The typed run summary (``summary.json``): what every report and the CLI render, read back with types.

:func:`write_summary` writes it once, when the figures are computed (:func:`cadre.evaluate.summarize`);
:func:`read_summary` reads it back as the same dataclasses, so a report renders a summary and never
recomputes one. Non-finite floats are written as ``null`` and read back as NaN (or None where a field is
optional).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cadre.config import to_jsonable
from cadre.errors import DataError
from cadre.evaluate.cost import CostSummary
from cadre.evaluate.stats import BootstrapResult, Comparison, McNemarResult, Spread

__all__ = [
    "SUMMARY_FILE",
    "BootstrapResult",
    "LatencyStats",
    "McNemarResult",
    "RobustnessResult",
    "RunSummary",
    "SystemResult",
    "read_summary",
    "write_summary",
]

SUMMARY_FILE = "summary.json"

T = TypeVar("T")


@dataclass
class LatencyStats:
    n: int
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None
    ttft_p50_s: float | None
    prompt_tokens_mean: float | None
    completion_tokens_mean: float | None
    values_s: list[float] = field(default_factory=list)  # every answered request's latency (for the charts)
    concurrency: int | None = 1  # requests in flight when measured (None: records at different levels)


@dataclass
class SystemResult:
    name: str
    kind: str
    model: str | None
    adapter: str | None
    shots: int
    n: int  # items with a record (original, all repeats)
    expected: int
    metric: float  # the task metric (mean over repeats)
    accuracy: float  # share of items scored fully correct
    failures: int
    failure_rate: float
    latency: LatencyStats
    cost: CostSummary
    latency_solo: LatencyStats | None = None  # one request at a time (the run itself, or its probe)
    repeats: Spread | None = None
    routes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # a few distinct error messages
    step_accuracy: dict[str, float] = field(default_factory=dict)  # pipelines: step id -> share correct


@dataclass
class RobustnessResult:
    system: str
    perturbation: str
    description: str
    n: int
    original: float  # metric on the same items, unperturbed
    perturbed: float
    delta: float
    delta_low: float | None  # 95% paired bootstrap CI of the delta (perturbed - original)
    delta_high: float | None
    consistency: float  # same answer before and after (same correctness when the answer was recomputed)
    flipped_to_wrong: int
    flipped_to_right: int


@dataclass
class RunSummary:
    run_dir: str
    task: str
    metric: str
    n_items: int
    baseline: str | None
    complete: bool
    systems: dict[str, SystemResult]
    comparisons: list[Comparison]
    robustness: list[RobustnessResult]
    perturbations: list[str]
    repeats: int
    temperature: float
    created: str
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable(dataclasses.asdict(self))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """The summary from its JSON form (as :meth:`to_json` wrote it)."""
        return _decode(cls, data)


def write_summary(run_dir: str | Path, summary: RunSummary) -> Path:
    """Write ``summary.json`` into the run directory."""
    path = Path(run_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def read_summary(run_dir: str | Path) -> RunSummary:
    """The run's ``summary.json`` as a :class:`RunSummary`.

    Raises:
        DataError: no summary (the run never finished a summary; ``cadre eval report`` writes one) or a
            corrupt one.
    """
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        raise DataError(f"{run_dir} has no {SUMMARY_FILE}; run `cadre eval report {run_dir}` to compute it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunSummary.from_json(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{path} is corrupt ({err}); run `cadre eval report {run_dir}` to rewrite it"
        ) from None


def _decode(cls: type[T], data: Any) -> T:
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _value(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and f.name in data
    }
    return cls(**kwargs)


def _value(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value)
    if tp is float:
        return math.nan if value is None else float(value)
    if dataclasses.is_dataclass(tp):
        return _decode(tp, value)  # type: ignore[arg-type]
    if origin is list:
        return [_value(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_value(args[0], v) for v in value)
    if origin is dict:
        return {k: _value(args[1], v) for k, v in value.items()}
    return value
