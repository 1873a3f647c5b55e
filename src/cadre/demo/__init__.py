"""``cadre demo``: the paper's Table 1 reproduced on this machine, end to end, offline.

>>> from cadre.demo import DemoConfig, run_demo
>>> result = run_demo(DemoConfig.preset(fast=True, out="demo-out"))  # doctest: +SKIP
>>> result.report_html, result.serve_command  # doctest: +SKIP
"""

from __future__ import annotations

from cadre.demo.config import DemoConfig, TaskSizes
from cadre.demo.pipeline import DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "TaskSizes", "run_demo"]
