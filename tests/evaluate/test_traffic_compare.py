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


def _shadow_store(db: str | Path) -> str | Path:
    from cadre.traffic import Feedback, ShadowRecord

    msgs = [{"role": "user", "content": "label this"}]
    gen = ["refund", "refund", "delivery", "login", "refund", "login"]
    spec = ["refund", "delivery", "delivery", "login", "refund", "login"]
    labels = ["Refund", "delivery", "delivery", "login", None, "login"]
    with TrafficStore(db, create=True) as store:
        store.insert(
            [
                TrafficRecord(f"r{i}", "chat", "auto", "generalist", msgs, g, latency_s=1.0, cost=0.01)
                for i, g in enumerate(gen)
            ]
        )
        store.insert_shadow(
            [ShadowRecord(f"r{i}", "intents", s, latency_s=0.1, cost=0.001) for i, s in enumerate(spec)]
            + [ShadowRecord("r0", "other", "", error="TimeoutError: shadow timed out")]
        )
        store.insert_feedback(
            [Feedback(f"r{i}", label=lab) for i, lab in enumerate(labels) if lab is not None]
            + [Feedback("r4", score=1.0), Feedback("r5", score=0.0)]
        )
    return db


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_shadow_report_reads_the_logged_pairs_and_the_labels(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from cadre.evaluate import shadow_report

    where = (
        tmp_path / "s.db"
        if backend == "sqlite"
        else request.getfixturevalue("pg_store_url")("compare_shadow_")
    )
    db = _shadow_store(where)
    with pytest.raises(DataError, match="intents, other; name one"):
        shadow_report(db, similarity=False)
    r = shadow_report(db, "intents", similarity=False)
    assert (r.source, r.reference, r.n) == ("shadow", "generalist", 6)
    exact = next(a for a in r.agreement if a.measure == "exact_match")
    assert exact.specialist == pytest.approx(5 / 6) and exact.generalist is None
    assert r.specialist_latency_p50_s == pytest.approx(0.1) and r.generalist_latency_p50_s == pytest.approx(
        1.0
    )
    assert r.specialist_cost_per_request == pytest.approx(0.001)
    assert r.generalist_cost_per_request == pytest.approx(0.01)
    assert r.labelled == 5 and r.user_score == pytest.approx(0.5) and r.user_scored == 2
    acc = next(a for a in r.accuracy if a.measure == "label accuracy")
    assert acc.specialist == pytest.approx(1.0) and acc.generalist == pytest.approx(
        0.8
    )  # "Refund" = "refund"
    assert acc.low <= acc.specialist - acc.generalist <= acc.high
    with pytest.raises(DataError, match="all 1 shadow answers of 'other'"):
        shadow_report(db, "other", similarity=False)
    with pytest.raises(DataError, match="no shadow answers of 'nope'"):
        shadow_report(db, "nope", similarity=False)


def test_compare_reports_accuracy_against_labels(tmp_path: Path) -> None:
    from cadre.traffic import Feedback

    db, test = _setup(tmp_path, n=3)
    with TrafficStore(db) as store:
        store.insert_feedback([Feedback("r0", label=_invoice(0)[1]), Feedback("r1", label='{"number": "x"}')])
    result = compare_on_traffic(db, test, "spec=smollm2-135m", max_tokens=4, similarity=False)
    assert result.labelled == 2
    by = {a.measure: a for a in result.accuracy}
    assert set(by) == {"label accuracy", "label json_field_match"}
    assert by["label json_field_match"].generalist == pytest.approx(0.5)  # r0 right, r1's number wrong
