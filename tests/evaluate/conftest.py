"""Fixtures for the evaluation tests (helpers live in eval_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import INTENT_ROWS, write_jsonl


@pytest.fixture
def intents_file(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "intents.jsonl", [{"id": i, "text": t, "label": y} for i, t, y in INTENT_ROWS]
    )


@pytest.fixture
def intents_task(tmp_path: Path, intents_file: Path) -> Path:
    spec = tmp_path / "task.yaml"
    spec.write_text(
        """
name: toy-intents
data: intents.jsonl
target_field: label
input_field: text
prompt:
  system: "Classify the message into one of: {labels}."
  template: "Message: {text}"
extract: {kind: label}
metric: accuracy
generation: {max_tokens: 8}
""",
        encoding="utf-8",
    )
    return spec
