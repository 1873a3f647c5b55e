"""Extraction tasks that declare a JSON Schema decode under a grammar built from it, on the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadre.evaluate import BackendSystem, SystemSpec, load_task, run_eval
from cadre.evaluate.records import read_run_records
from cadre.evaluate.task import GenerationSpec
from cadre.runtime import load_backend

SCHEMA = {
    "type": "object",
    "properties": {"vendor": {"type": "string"}, "total": {"type": "integer"}},
    "required": ["vendor", "total"],
}


def test_a_schema_gives_a_json_grammar_unless_constraining_is_off() -> None:
    assert "root" in (GenerationSpec().params(json_schema=SCHEMA).grammar or "")
    assert GenerationSpec(constrain="off").params(json_schema=SCHEMA).grammar is None
    with pytest.raises(ValueError, match="kind 'json' only"):
        from cadre.evaluate.extract import ExtractSpec

        ExtractSpec(kind="text", json_schema=SCHEMA)


def test_every_answer_parses_and_matches_the_schema(tmp_path: Path) -> None:
    rows = [
        {"id": str(i), "text": f"Invoice from {v}, total {t} EUR", "answer": {"vendor": v, "total": t}}
        for i, (v, t) in enumerate([("Acme", 12), ("Globex", 7), ("Initech", 301)])
    ]
    (tmp_path / "inv.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "task.yaml").write_text(
        "name: invoices\ndata: inv.jsonl\n"
        "prompt: {system: 'Extract vendor and total as JSON.', template: '{text}'}\n"
        f"extract: {{kind: json, json_schema: {json.dumps(SCHEMA)}}}\n"
        "metric: exact_match\ngeneration: {max_tokens: 40}\n",
        encoding="utf-8",
    )
    task = load_task(tmp_path / "task.yaml")
    backend = load_backend("smollm2-135m", n_ctx=512)
    try:
        system = BackendSystem(SystemSpec(name="base", model="smollm2-135m"), backend)
        run_eval(task, [system], tmp_path / "run", progress=False)
    finally:
        backend.close()
    records = read_run_records(tmp_path / "run")
    assert len(records) == 3
    for rec in records:
        answer = json.loads(rec["raw"])  # the whole output is JSON
        assert isinstance(answer["vendor"], str) and isinstance(answer["total"], int), rec["raw"]
