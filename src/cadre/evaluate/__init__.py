"""Task-specific evaluation: systems on a task's items, with paired statistics, robustness, latency and cost.

>>> from cadre.evaluate import load_task, parse_system, run_eval, write_report
>>> summary = run_eval(load_task("task.yaml"), [parse_system("base=smollm2-135m,shots=5")], "runs/x")  # doctest: +SKIP
>>> write_report("runs/x").html  # doctest: +SKIP
"""

from __future__ import annotations

from cadre.evaluate.cost import CostSummary, Price, PriceTable, load_prices
from cadre.evaluate.metrics import METRICS, Metric, build_metric
from cadre.evaluate.perturb import PERTURBATIONS, Perturbation, PerturbContext, perturb_items
from cadre.evaluate.report import ReportPaths, write_report
from cadre.evaluate.runner import RunSummary, SystemResult, read_records, run_eval, summarize
from cadre.evaluate.stats import Comparison, mcnemar, paired_bootstrap, paired_comparison, spread
from cadre.evaluate.systems import BackendSystem, EvalSystem, RoutedSystem, SystemSpec, parse_system
from cadre.evaluate.task import Item, TaskSpec, load_items, load_task

__all__ = [
    "METRICS",
    "PERTURBATIONS",
    "BackendSystem",
    "Comparison",
    "CostSummary",
    "EvalSystem",
    "Item",
    "Metric",
    "PerturbContext",
    "Perturbation",
    "Price",
    "PriceTable",
    "ReportPaths",
    "RoutedSystem",
    "RunSummary",
    "SystemResult",
    "SystemSpec",
    "TaskSpec",
    "build_metric",
    "load_items",
    "load_prices",
    "load_task",
    "mcnemar",
    "paired_bootstrap",
    "paired_comparison",
    "parse_system",
    "perturb_items",
    "read_records",
    "run_eval",
    "spread",
    "summarize",
    "write_report",
]
