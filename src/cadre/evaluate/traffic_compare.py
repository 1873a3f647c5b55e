"""Decide from traffic: a new specialist against the generalist on held-out logged requests.

The held-out requests are the ``test.jsonl`` that ``cadre traffic export`` wrote: each row's last assistant
message is the reference (the generalist's logged answer, or a teacher's when the export relabelled). The
generalist's answers, latency and cost come from the capture store, by request id; the specialist is run now.

Agreement with the reference is measured three ways: ``exact_match`` (normalised text), ``json_field_match``
(share of the reference object's fields, when the references are JSON objects) and ``similarity`` (cosine of
MiniLM embeddings). With a teacher, each measure is a paired comparison specialist vs generalist (bootstrap CI
of the difference, McNemar for 0/1 scores); without one the generalist agrees with itself by construction, so
the specialist's agreement is reported with its bootstrap CI.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadre.errors import DataError
from cadre.evaluate.cost import load_prices, summarize_cost
from cadre.evaluate.metrics import build_metric
from cadre.evaluate.stats import paired_bootstrap, paired_comparison
from cadre.evaluate.systems import EvalRequest, SystemSpec, build_systems, parse_system
from cadre.runtime.protocol import ChatMessage, SamplingParams
from cadre.traffic import TrafficRecord, open_store

__all__ = ["Agreement", "TrafficComparison", "compare_on_traffic"]


@dataclass
class Agreement:
    """One measure of agreement with the reference."""

    measure: str
    n: int
    specialist: float
    generalist: float | None  # None when the reference is the generalist's own answer
    low: float  # CI of the specialist's agreement, or (with a teacher) of specialist - generalist
    high: float
    verdict: str


@dataclass
class TrafficComparison:
    """What :func:`compare_on_traffic` measured; ``to_json()`` for ``--json``."""

    specialist: str
    reference: str  # "generalist" (its logged answers) or "teacher"
    n: int
    agreement: list[Agreement]
    specialist_latency_p50_s: float
    generalist_latency_p50_s: float
    specialist_cost_per_request: float | None
    specialist_cost_note: str
    generalist_cost_per_request: float
    skipped: dict[str, int] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist; write it with `cadre traffic export DB --task N --out DIR`")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{i}: not valid JSON ({err})") from None
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not msgs or msgs[-1].get("role") != "assistant" or "id" not in row:
            raise DataError(
                f"{path}:{i}: expected {{'id', 'messages': [..., assistant]}} as `traffic export` writes"
            )
        rows.append(row)
    return rows


def _as_sent(messages: list[dict[str, Any]]) -> Callable[[SystemSpec], list[ChatMessage]]:
    """A prompt builder that gives every system the chat as the client sent it (no few-shot, no template)."""

    def build(_spec: SystemSpec) -> list[ChatMessage]:
        return [{"role": m["role"], "content": m["content"]} for m in messages]  # type: ignore[misc]

    return build


def _agreement(
    measure: str, spec: list[float], gen: list[float], *, teacher: bool, name: str, seed: int
) -> Agreement:
    if teacher:
        c = paired_comparison(spec, gen, a_name=name, b_name="generalist", metric=measure, seed=seed)
        b = c.bootstrap
        return Agreement(measure, c.n, c.a_value, c.b_value, b.low, b.high, c.verdict)
    b = paired_bootstrap(spec, [0.0] * len(spec), seed=seed)  # the CI of the specialist's mean
    pct = round(b.confidence * 100)
    verdict = (
        f"{name} agrees with the generalist on {b.difference:.1%} of requests ({measure}), "
        f"{pct}% CI {b.low:.1%} to {b.high:.1%} (n = {b.n})"
    )
    return Agreement(measure, b.n, b.difference, None, b.low, b.high, verdict)


def compare_on_traffic(
    store: str | Path,
    test_file: str | Path,
    system: str,
    *,
    max_tokens: int = 256,
    similarity: bool = True,
    seed: int = 0,
) -> TrafficComparison:
    """Run ``system`` (``NAME=MODEL[,adapter=PATH,...]`` as ``cadre eval --system`` takes it) on the held-out
    requests of ``test_file`` and compare it with the generalist's logged answers in ``store``.

    Raises:
        DataError: a missing or malformed test file, or none of its requests in the store.
        ConfigError: a bad system.
    """
    rows = _rows(Path(test_file))
    with open_store(store) as db:
        logged: dict[str, TrafficRecord] = {r.request_id: r for r in db.iter_records()}
    items = [(row, logged[row["id"]]) for row in rows if row["id"] in logged]
    skipped = (
        {"not in the store (deleted by retention?)": len(rows) - len(items)} if len(items) < len(rows) else {}
    )
    if not items:
        raise DataError(
            f"none of the {len(rows)} requests of {test_file} is in {store}; export from this store"
        )
    spec = parse_system(system)
    systems, errors = build_systems([spec])
    if spec.name in errors:
        raise DataError(f"system {spec.name!r} could not be loaded: {errors[spec.name]}")
    runner = systems[spec.name]
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    answers: list[dict[str, Any]] = []
    try:
        for row, rec in items:
            prompt_msgs = row["messages"][:-1]
            req = EvalRequest(text=rec.prompt, build=_as_sent(prompt_msgs))
            g = runner.generate(req, params)
            answers.append(
                {
                    "id": row["id"],
                    "reference": row["messages"][-1]["content"],
                    "generalist": rec.response,
                    "specialist": g.text,
                    "latency_s": g.latency_s,
                    "prompt_tokens": g.prompt_tokens,
                    "completion_tokens": g.completion_tokens,
                }
            )
    finally:
        runner.close()
    refs = [a["reference"] for a in answers]
    teacher = any(a["reference"] != a["generalist"] for a in answers)
    measures: dict[str, tuple[list[float], list[float]]] = {}
    exact = build_metric("exact_match")
    measures["exact_match"] = (
        [exact.score(a["specialist"], r) for a, r in zip(answers, refs, strict=True)],
        [exact.score(a["generalist"], r) for a, r in zip(answers, refs, strict=True)],
    )
    objects = [r for r in refs if r.lstrip().startswith("{")]
    if objects and len(objects) == len(refs):
        fields = build_metric("json_field_match")
        measures["json_field_match"] = (
            [fields.score(a["specialist"], r) for a, r in zip(answers, refs, strict=True)],
            [fields.score(a["generalist"], r) for a, r in zip(answers, refs, strict=True)],
        )
    if similarity:
        from cadre.runtime.embeddings import get_embedder

        emb = get_embedder()
        ref_v = emb.encode(refs)
        spec_v = emb.encode([a["specialist"] for a in answers])
        gen_v = emb.encode([a["generalist"] for a in answers])
        measures["similarity"] = (
            np.sum(spec_v * ref_v, axis=1).astype(float).tolist(),
            np.sum(gen_v * ref_v, axis=1).astype(float).tolist(),
        )
    agreement = [
        _agreement(m, s, g, teacher=teacher, name=spec.name, seed=seed) for m, (s, g) in measures.items()
    ]
    cost = summarize_cost(spec, answers, load_prices())
    return TrafficComparison(
        specialist=spec.name,
        reference="teacher" if teacher else "generalist",
        n=len(answers),
        agreement=agreement,
        specialist_latency_p50_s=statistics.median(a["latency_s"] for a in answers),
        generalist_latency_p50_s=statistics.median(rec.latency_s for _, rec in items),
        specialist_cost_per_request=cost.per_request,
        specialist_cost_note=cost.note or (cost.method or ""),
        generalist_cost_per_request=sum(rec.cost for _, rec in items) / len(items),
        skipped=skipped,
        answers=answers,
    )
