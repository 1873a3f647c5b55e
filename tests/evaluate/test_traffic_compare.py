"""`cadre traffic compare`'s library: a real specialist run (the bundled SmolLM2) on held-out logged requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadre.errors import DataError
from cadre.evaluate import compare_on_traffic
from cadre.traffic import TrafficRecord, TrafficStore


def _invoice(i: int) -> tuple[str, str]:
    return f"Invoice INV-{i:03d} from Acme, total {10 + i}.50 EUR", json.dumps(
        {"number": f"INV-{i:03d}", "total": 10.5 + i}
    )


def _setup(tmp: Path, n: int = 6, *, teacher: bool = False) -> tuple[Path, Path]:
    db, test = tmp / "t.db", tmp / "test.jsonl"
    records = []
    rows = []
    for i in range(n):
        prompt, answer = _invoice(i)
        msgs = [{"role": "user", "content": f"Extract number and total as JSON: {prompt}"}]
        records.append(
            TrafficRecord(f"r{i}", "chat", "auto", "generalist", msgs, answer, latency_s=0.8, cost=0.002)
        )
        ref = json.dumps({"number": f"INV-{i:03d}", "total": 99.0}) if teacher else answer
        rows.append({"id": f"r{i}", "messages": [*msgs, {"role": "assistant", "content": ref}]})
    rows.append({"id": "gone", "messages": [*msgs, {"role": "assistant", "content": "{}"}]})
    with TrafficStore(db, create=True) as store:
        store.insert(records)
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return db, test


def test_specialist_against_the_generalists_logged_answers(tmp_path: Path) -> None:
    db, test = _setup(tmp_path)
    result = compare_on_traffic(db, test, "spec=smollm2-135m", max_tokens=12)
    assert result.reference == "generalist" and result.n == 6
    assert result.skipped == {"not in the store (deleted by retention?)": 1}
    by = {a.measure: a for a in result.agreement}
    assert set(by) == {"exact_match", "json_field_match", "similarity"}
    for a in by.values():
        assert a.generalist is None and a.low <= a.specialist <= a.high and a.n == 6
        assert "agrees with the generalist" in a.verdict
    assert result.generalist_latency_p50_s == pytest.approx(0.8)
    assert result.generalist_cost_per_request == pytest.approx(0.002)
    assert result.specialist_latency_p50_s > 0
    assert len(result.answers) == 6 and all(a["specialist"] for a in result.answers)


def test_with_a_teacher_both_are_scored_and_paired(tmp_path: Path) -> None:
    db, test = _setup(tmp_path, n=4, teacher=True)
    result = compare_on_traffic(db, test, "spec=smollm2-135m", max_tokens=8, similarity=False)
    assert result.reference == "teacher"
    fields = next(a for a in result.agreement if a.measure == "json_field_match")
    assert fields.generalist == pytest.approx(0.5)  # the number field right, the total not
    assert fields.low <= fields.specialist - fields.generalist <= fields.high


def test_a_test_file_from_elsewhere_is_a_clear_error(tmp_path: Path) -> None:
    db, _ = _setup(tmp_path, n=2)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "messages": [{"role": "assistant", "content": "a"}]}) + "\n")
    with pytest.raises(DataError, match="none of the 1 requests"):
        compare_on_traffic(db, other, "spec=smollm2-135m")
    with pytest.raises(DataError, match="traffic export"):
        compare_on_traffic(db, tmp_path / "missing.jsonl", "spec=smollm2-135m")
