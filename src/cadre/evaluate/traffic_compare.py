"""Decide from traffic: a new specialist against the generalist on held-out logged requests.

The held-out requests are the ``test.jsonl`` that ``cadre traffic export`` wrote: each row's last assistant
message is the reference (the generalist's logged answer, or a teacher's when the export relabelled). The
generalist's answers, latency and cost come from the capture store, by request id; the specialist is run now.

Agreement with the reference is measured three ways: ``exact_match`` (normalised text), ``json_field_match``
(share of the reference object's fields, when the references are JSON objects) and ``similarity`` (cosine of
MiniLM embeddings). With a teacher, each measure is a paired comparison specialist vs generalist (bootstrap CI
of the difference, McNemar for 0/1 scores); without one the generalist agrees with itself by construction, so
the specialist's agreement is reported with its bootstrap CI.

Shadow mode (:func:`shadow_report`) goes through the same measures on the pairs the gateway logged: the
specialist's shadow answer against the generalist's answer to the same live request, with both latencies and
costs as logged. Where users gave feedback (``POST /v1/feedback`` or ``cadre traffic feedback FILE``), labels
are a second reference: accuracy of the specialist and of the generalist against them, paired (bootstrap CI of
the difference, McNemar), and the mean user score of the generalist's answers.
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
from cadre.traffic import Feedback, TrafficRecord, open_store
from cadre.traffic.location import describe_store

__all__ = ["Agreement", "TrafficComparison", "compare_on_traffic", "exact_agreement", "shadow_report"]


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
    source: str = (
        "rerun"  # "rerun": the specialist run now on held-out requests; "shadow": its logged answers
    )
    accuracy: list[Agreement] = field(default_factory=list)  # against user labels, specialist vs generalist
    labelled: int = 0  # requests with a user label
    user_score: float | None = None  # mean feedback score of the generalist's answers
    user_scored: int = 0

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
        feedback = db.feedback()
    items = [(row, logged[row["id"]]) for row in rows if row["id"] in logged]
    skipped = (
        {"not in the store (deleted by retention?)": len(rows) - len(items)} if len(items) < len(rows) else {}
    )
    if not items:
        raise DataError(
            f"none of the {len(rows)} requests of {test_file} is in {describe_store(store)}; export from this store"
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
    teacher = any(a["reference"] != a["generalist"] for a in answers)
    agreement = _agreements(answers, name=spec.name, teacher=teacher, similarity=similarity, seed=seed)
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
        **_from_feedback(answers, feedback, name=spec.name, seed=seed),
    )


def exact_agreement(answer: str, reference: str) -> float:
    """1.0 when ``answer`` equals ``reference`` as the ``exact_match`` measure compares them (the live shadow
    agreement ``cadre serve`` counts on /metrics)."""
    return build_metric("exact_match").score(answer, reference)


def _measures(
    answers: list[dict[str, Any]],
    *,
    similarity: bool,
    reference: str = "reference",
    exact_name: str = "exact_match",
) -> dict[str, tuple[list[float], list[float]]]:
    """Per measure, the specialist's and the generalist's per-item scores against ``answers[i][reference]``
    (``exact_name``: ``exact_match`` for answers, ``accuracy`` (case, ``_``/``-`` and edge punctuation
    ignored) for user labels)."""
    refs = [a[reference] for a in answers]
    measures: dict[str, tuple[list[float], list[float]]] = {}
    exact = build_metric(exact_name)
    measures[exact_name] = (
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
    return measures


def _agreements(
    answers: list[dict[str, Any]], *, name: str, teacher: bool, similarity: bool, seed: int
) -> list[Agreement]:
    measures = _measures(answers, similarity=similarity)
    return [_agreement(m, s, g, teacher=teacher, name=name, seed=seed) for m, (s, g) in measures.items()]


def _from_feedback(
    answers: list[dict[str, Any]], feedback: dict[str, Feedback], *, name: str, seed: int
) -> dict[str, Any]:
    """Accuracy against the users' labels (paired, specialist vs generalist) and their mean score of the
    generalist's answers, for the answers whose request has feedback."""
    labelled = [{**a, "label": feedback[a["id"]].label} for a in answers if a["id"] in feedback]
    labelled = [a for a in labelled if a["label"] is not None]
    scores = [feedback[a["id"]].score for a in answers if a["id"] in feedback]
    scored = [s for s in scores if s is not None]
    accuracy: list[Agreement] = []
    if labelled:
        for measure, (spec, gen) in _measures(
            labelled, similarity=False, reference="label", exact_name="accuracy"
        ).items():
            accuracy.append(_agreement(f"label {measure}", spec, gen, teacher=True, name=name, seed=seed))
    return {
        "accuracy": accuracy,
        "labelled": len(labelled),
        "user_score": sum(scored) / len(scored) if scored else None,
        "user_scored": len(scored),
    }


def shadow_report(
    store: str | Path, specialist: str | None = None, *, similarity: bool = True, seed: int = 0
) -> TrafficComparison:
    """Agreement of a shadowed specialist with the generalist on the live requests both answered (the pairs
    the gateway logged), with bootstrap CIs, both latencies and costs as logged, and accuracy against user labels.

    Raises:
        NotFoundError / StoreError: no usable store.
        DataError: no shadow answers (of ``specialist``), or several specialists and none named.
    """
    with open_store(store) as db:
        names = db.shadowed_specialists()
        if specialist is None:
            if len(names) > 1:
                raise DataError(
                    f"{describe_store(store)} holds shadow answers of {', '.join(names)}; name one (--specialist)"
                )
            specialist = names[0] if names else None
        pairs = db.shadow_pairs(specialist) if specialist is not None else []
        feedback = db.feedback()
    if specialist is None or not pairs:
        known = f" (shadowed: {', '.join(names)})" if names else ""
        raise DataError(
            f"{describe_store(store)} holds no shadow answers{' of ' + repr(specialist) if specialist else ''}{known}; run a "
            "specialist in shadow (capture.shadow in ecosystem.yaml) and serve some requests"
        )
    ok = [(r, s) for r, s in pairs if s.error is None]
    failed = len(pairs) - len(ok)
    if not ok:
        raise DataError(
            f"all {failed} shadow answers of {specialist!r} in {describe_store(store)} failed (see the server log)"
        )
    answers = [
        {
            "id": r.request_id,
            "reference": r.response,
            "generalist": r.response,
            "specialist": s.response,
            "latency_s": s.latency_s,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
        }
        for r, s in ok
    ]
    return TrafficComparison(
        specialist=specialist,
        reference="generalist",
        n=len(answers),
        agreement=_agreements(answers, name=specialist, teacher=False, similarity=similarity, seed=seed),
        specialist_latency_p50_s=statistics.median(s.latency_s for _, s in ok),
        generalist_latency_p50_s=statistics.median(r.latency_s for r, _ in ok),
        specialist_cost_per_request=sum(s.cost for _, s in ok) / len(ok),
        specialist_cost_note="as logged (capture.prices)",
        generalist_cost_per_request=sum(r.cost for r, _ in ok) / len(ok),
        skipped={"shadow failed (timeout or error)": failed} if failed else {},
        answers=answers,
        source="shadow",
        **_from_feedback(answers, feedback, name=specialist, seed=seed),
    )
