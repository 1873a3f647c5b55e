"""The demo's Table 1 priced at deployment scale: every task's measured tokens and quality, projected with
``cadre cost plan`` (:func:`cadre.evaluate.deployment_section`) for a stated deployment."""

from __future__ import annotations

from pathlib import Path

from cadre.errors import DataError
from cadre.evaluate import DeploymentSection, RunSummary, deployment_section, read_summary

__all__ = ["deployment_table"]


def deployment_table(out: Path, tasks: list[str]) -> DeploymentSection | None:
    """The section for every task with a finished evaluation (``out/eval/<task>``), or None when none has one."""
    summaries: dict[str, RunSummary] = {}
    for task in tasks:
        try:
            summaries[task] = read_summary(out / "eval" / task)
        except DataError:
            continue
    return deployment_section(summaries) if summaries else None
