"""Task-specific evaluation: systems on a task's items, with paired statistics, robustness, latency and cost.

>>> from cadre.evaluate import load_task, parse_system, read_summary, run_eval, write_report
>>> summary = run_eval(load_task("task.yaml"), [parse_system("base=smollm2-135m,shots=5")], "runs/x")  # doctest: +SKIP
>>> write_report("runs/x", summary).html  # doctest: +SKIP
>>> read_summary("runs/x").systems["base"].metric  # doctest: +SKIP
"""

from __future__ import annotations

from cadre.evaluate.cost import CostSummary, Price, PriceTable, load_prices
from cadre.evaluate.formatting import (
    finite,
    inline_md,
    markdown_html_table,
    md_table,
    p_value,
    percent,
    png_file_html,
    points,
    seconds_plain,
    usd_rounded,
)
from cadre.evaluate.metrics import METRICS, Metric, build_metric
from cadre.evaluate.perturb import (
    PERTURBATIONS,
    Perturbation,
    PerturbContext,
    get_perturbation,
    perturb_items,
)
from cadre.evaluate.projection import Deployment, DeploymentSection, deployment_section, measured_for_plan
from cadre.evaluate.records import read_run_records
from cadre.evaluate.report import ReportPaths, robustness_rows, table1_rows, write_report
from cadre.evaluate.results import (
    LatencyStats,
    RobustnessResult,
    RunSummary,
    SystemResult,
    read_summary,
    write_summary,
)
from cadre.evaluate.runner import run_eval
from cadre.evaluate.stats import Comparison, mcnemar, paired_bootstrap, paired_comparison, spread
from cadre.evaluate.summary import compare_run, summarize
from cadre.evaluate.systems import (
    BackendSystem,
    EvalRequest,
    EvalSystem,
    Generation,
    RoutedSystem,
    SystemSpec,
    parse_system,
)
from cadre.evaluate.task import Item, TaskSpec, load_items, load_task
from cadre.evaluate.traffic_compare import (
    Agreement,
    TrafficComparison,
    compare_on_traffic,
    exact_agreement,
    shadow_report,
)

__all__ = [
    "METRICS",
    "PERTURBATIONS",
    "Agreement",
    "BackendSystem",
    "Comparison",
    "CostSummary",
    "Deployment",
    "DeploymentSection",
    "EvalRequest",
    "EvalSystem",
    "Generation",
    "Item",
    "LatencyStats",
    "Metric",
    "PerturbContext",
    "Perturbation",
    "Price",
    "PriceTable",
    "ReportPaths",
    "RobustnessResult",
    "RoutedSystem",
    "RunSummary",
    "SystemResult",
    "SystemSpec",
    "TaskSpec",
    "TrafficComparison",
    "build_metric",
    "compare_on_traffic",
    "compare_run",
    "deployment_section",
    "exact_agreement",
    "finite",
    "get_perturbation",
    "inline_md",
    "load_items",
    "load_prices",
    "load_task",
    "markdown_html_table",
    "mcnemar",
    "md_table",
    "measured_for_plan",
    "p_value",
    "paired_bootstrap",
    "paired_comparison",
    "parse_system",
    "percent",
    "perturb_items",
    "png_file_html",
    "points",
    "read_run_records",
    "read_summary",
    "robustness_rows",
    "run_eval",
    "seconds_plain",
    "shadow_report",
    "spread",
    "summarize",
    "table1_rows",
    "usd_rounded",
    "write_report",
    "write_summary",
]
