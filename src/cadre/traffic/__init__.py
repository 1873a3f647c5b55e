"""cadre.traffic: the flywheel's data side. Capture the generalist's traffic (redacted, in SQLite or
PostgreSQL), find the tasks
in it, and export one task as a training set for a specialist.

Public API (the heavy parts load on first use)::

    from cadre.traffic import CaptureSpec, Recorder, Redactor, open_store
    Redactor().redact("mail jane@example.com")            # -> "mail [EMAIL]"
    from cadre.traffic import discover_tasks, export_task
    report = discover_tasks("traffic.db")                 # clusters -> candidate tasks
    export_task("traffic.db", task=0, out="data/task0")   # chat JSONL train/validation/test
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cadre.traffic.actions import ACTION_LOG, log_action, read_actions, store_action_log
from cadre.traffic.config import PII_TYPES, CaptureSpec, Price, RedactionSpec, RetentionSpec, ShadowSpec
from cadre.traffic.feedback import import_feedback, read_feedback
from cadre.traffic.location import PostgresLocation, describe_store
from cadre.traffic.recorder import Recorder
from cadre.traffic.redact import Redactor, iban_valid, luhn_valid
from cadre.traffic.store import Feedback, ShadowRecord, TrafficRecord, TrafficStore, open_store

if TYPE_CHECKING:
    from cadre.traffic.discover import Task, TaskReport, discover_tasks
    from cadre.traffic.export import ExportResult, export_task

__all__ = [
    "ACTION_LOG",
    "PII_TYPES",
    "CaptureSpec",
    "ExportResult",
    "Feedback",
    "PostgresLocation",
    "Price",
    "Recorder",
    "RedactionSpec",
    "Redactor",
    "RetentionSpec",
    "ShadowRecord",
    "ShadowSpec",
    "Task",
    "TaskReport",
    "TrafficRecord",
    "TrafficStore",
    "describe_store",
    "discover_tasks",
    "export_task",
    "iban_valid",
    "import_feedback",
    "log_action",
    "luhn_valid",
    "open_store",
    "read_actions",
    "read_feedback",
    "store_action_log",
]

_LAZY = {
    "Task": "cadre.traffic.discover",
    "TaskReport": "cadre.traffic.discover",
    "discover_tasks": "cadre.traffic.discover",
    "ExportResult": "cadre.traffic.export",
    "export_task": "cadre.traffic.export",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cadre.traffic' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
