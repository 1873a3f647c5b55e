"""Ecosystems with pipelines, shared by the tests of this folder."""

from __future__ import annotations

from typing import Any

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "string"}, "date": {"type": "string"}},
    "required": ["amount", "date"],
}


def ecosystem(pipelines: dict[str, Any], *, generalist: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "specialists": [{"name": "intents"}, {"name": "invoices"}],
        "server": {"fallback": "generalist" if generalist else "error"},
        "pipelines": pipelines,
    }
    if generalist:
        data["generalist"] = {"model": "smollm2-135m"}
    return data


def support_pipeline() -> dict[str, Any]:
    """The composed support task: intent + invoice fields + normalised date and amount, in one JSON answer."""
    return {
        "input": {"text": "string"},
        "steps": [
            {
                "id": "intent",
                "kind": "call",
                "model": "intents",
                "prompt": "{input.text}",
                "parse": "label",
                "labels": ["billing", "refund", "other"],
            },
            {
                "id": "fields",
                "kind": "call",
                "model": "invoices",
                "prompt": "Extract amount and date: {input.text}",
                "parse": "json",
                "json_schema": INVOICE_SCHEMA,
                "on_failure": "escalate",
                "when": "intent in ['billing', 'refund']",
            },
            {"id": "due", "kind": "tool", "tool": "date", "args": {"date": "{fields.date}"}},
            {"id": "total", "kind": "tool", "tool": "arithmetic", "args": {"expression": "{fields.amount}"}},
        ],
        "output": {"intent": "{intent}", "date": "{due}", "amount": "{total}"},
    }
