"""The demo's composed task: the three specialists as one pipeline against the generalist doing it all in one prompt.

Each item is a support message with an invoice pasted under it (``cadre.synth`` task ``composed``); the answer is
one JSON object: the intent, the invoice number, vendor and currency, the issue date (ISO) and the total. The
``support`` pipeline (written into the demo's ``ecosystem.yaml``) splits the text with two ``regex_extract`` tools,
votes the intent with the intents specialist (escalating to the generalist when the samples disagree), extracts
the fields with the invoices specialist, and normalizes the date and the amount with the normalize specialist.
``cadre.evaluate`` runs both systems on the same items (paired statistics, latency, cost, per-step accuracy), and
the vote records give the escalation trade-off at lower thresholds without running again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadre.demo.evaluation import task_spec
from cadre.demo.steps import SkipStep, StepRunner, step_done
from cadre.evaluate import (
    markdown_html_table,
    md_table,
    percent,
    points,
    read_run_records,
    run_eval,
    seconds_plain,
    usd_rounded,
)
from cadre.synth import generate, get_generator, write_jsonl

__all__ = [
    "PIPELINE",
    "VOTE_K",
    "VOTE_THRESHOLD",
    "ComposedSection",
    "composed_section",
    "composed_step",
    "evaluate_composed",
    "support_pipeline",
]

PIPELINE = "support"
VOTE_K = 5
VOTE_THRESHOLD = 0.8
"""The vote's threshold in the file: escalate unless 4 of the 5 samples agree. Lower thresholds escalate a subset
of the same requests, so their figures come from the same records."""
_LOWER_THRESHOLDS = (0.6, 0.4, 0.0)
_SHOTS = 1  # exemplars for the one-prompt generalist: each is a whole message plus invoice (~300 tokens)
_RESULT = "composed.json"


def support_pipeline(threshold: float = VOTE_THRESHOLD) -> dict[str, Any]:
    """The ``support`` pipeline over the demo's specialists ``intents``, ``invoices`` and ``normalize``."""
    return {
        "description": "support message + invoice -> intent, invoice fields, normalized date and amount",
        "steps": [
            # the message is the first line; the invoice starts after the first blank line
            {
                "id": "message",
                "kind": "tool",
                "tool": "regex_extract",
                "args": {"text": "{input.text}", "pattern": r"^[^\n]+"},
            },
            {
                "id": "document",
                "kind": "tool",
                "tool": "regex_extract",
                "args": {"text": "{input.text}", "pattern": r"(?s)(?<=\n\n).+"},
            },
            {
                "id": "intent",
                "kind": "vote",
                "model": "intents",
                "prompt": "{message.match}",
                "parse": "label",
                "labels": list(get_generator("intents").labels or ()),
                "k": VOTE_K,
                "threshold": threshold,
                "max_tokens": 12,
            },
            {
                "id": "fields",
                "kind": "call",
                "model": "invoices",
                "prompt": "{document.match}",
                "parse": "json",
                "json_schema": {
                    "type": "object",
                    # the total as a number (how the specialist is trained) or as written: with only a number,
                    # constrained decoding cut a copied "1,844.21" at the comma (measured: totals of 1, 2, 3); with
                    # only a string, the specialist wrote "". The normalize step makes a number of either.
                    # One dict per field: a shared one would be a YAML anchor in the file.
                    "properties": {
                        k: {"type": ["number", "string"] if k == "total" else "string"}
                        for k in ("invoice_number", "date", "vendor", "total", "currency")
                    },
                    "required": ["invoice_number", "date", "vendor", "total", "currency"],
                },
                "on_failure": "escalate",
                "max_tokens": 96,
            },
            {
                "id": "date",
                "kind": "call",
                "model": "normalize",
                "prompt": "Normalize: {fields.date}",
                "max_tokens": 16,
            },
            {
                "id": "amount",
                "kind": "call",
                "model": "normalize",
                "prompt": "Normalize: {fields.total}",
                "parse": "number",
                "max_tokens": 16,
            },
        ],
        "output": {
            "intent": "{intent}",
            "invoice_number": "{fields.invoice_number}",
            "date": "{date}",
            "vendor": "{fields.vendor}",
            "total": "{amount}",
            "currency": "{fields.currency}",
        },
    }


def composed_step(r: StepRunner, *, generalist: str, price_per_hour: float) -> None:
    """Evaluate the ``support`` pipeline against the one-prompt generalist on ``cfg.composed_items`` items."""
    cfg = r.cfg
    deps = ("ecosystem", *[f"train-{t}" for t in cfg.tasks])
    settings = [generalist, cfg.composed_items, cfg.seed, price_per_hour, support_pipeline(), _SHOTS]
    r.step("composed", settings, lambda: _run(r, generalist, price_per_hour), depends=deps)


def _run(r: StepRunner, generalist: str, price_per_hour: float) -> tuple[list[Path], dict[str, Any], str]:
    from cadre.evaluate import SystemSpec

    cfg = r.cfg
    if cfg.composed_items < 1:
        raise SkipStep("composed_items is 0")
    eco = r.out / "ecosystem.yaml"
    if not step_done(r, "ecosystem") or not eco.is_file():
        raise SkipStep("no ecosystem.yaml (the ecosystem step did not finish)")
    missing = [t for t in ("intents", "invoices", "normalize") if t not in cfg.tasks]
    if missing:
        raise SkipStep(
            f"the pipeline needs the specialists {', '.join(missing)}, which this demo does not have"
        )
    data = r.out / "data" / "composed"
    gen = get_generator("composed")
    write_jsonl(data / "test.jsonl", generate(gen, split="test", n=cfg.composed_items, seed=cfg.seed))
    write_jsonl(data / "train.jsonl", generate(gen, split="train", n=4, seed=cfg.seed))
    hw: dict[str, Any] = {"hardware": cfg.hardware, "price_per_hour": price_per_hour}
    systems = [
        SystemSpec(name="generalist", model=generalist, shots=_SHOTS, **hw),
        SystemSpec(name="pipeline", kind="pipeline", pipeline=PIPELINE, ecosystem=str(eco), **hw),
    ]
    run_dir = r.out / "eval" / "composed"
    if run_dir.exists():  # records of other specialists or settings: start again (a few items)
        shutil.rmtree(run_dir)
    options = {"n_threads": cfg.threads} if cfg.threads else None
    result = evaluate_composed(
        r.out / "data", systems, run_dir, backend_options=options, latency_probe=cfg.latency_probe
    )
    p, g = result["systems"]["pipeline"], result["systems"]["generalist"]
    note = (
        f"{result['n']} items: pipeline {percent(p['metric'], unit='%')} vs generalist "
        f"{percent(g['metric'], unit='%')} of fields right"
        + (f" ({points(result['difference'], unit=' pts')})" if result["difference"] is not None else "")
    )
    return [run_dir / _RESULT, run_dir / "summary.json"], {"n": result["n"]}, note


def evaluate_composed(
    data_dir: Path,
    systems: list[Any],
    run_dir: Path,
    *,
    backend_options: dict[str, Any] | None = None,
    latency_probe: int | None = None,
) -> dict[str, Any]:
    """Run ``systems`` (``generalist`` and ``pipeline``) on ``data_dir/composed`` with ``cadre.evaluate`` and
    write the figures the report shows to ``run_dir/composed.json``."""
    spec = task_spec("composed", data_dir, shots=_SHOTS).model_copy(
        update={"step_target_field": "step_references"}
    )
    summary = run_eval(
        spec,
        systems,
        run_dir,
        baseline="generalist",
        progress=True,
        backend_options=backend_options,
        latency_probe=latency_probe,
    )
    result = _result(summary, read_run_records(run_dir), spec.build_metric())
    (run_dir / _RESULT).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _result(summary: Any, records: list[dict[str, Any]], metric: Any) -> dict[str, Any]:
    systems = {
        name: {
            "metric": s.metric,
            "all_fields": s.accuracy,
            "failures": s.failures,
            "p50_s": s.latency.p50_s,
            "tokens": (s.latency.prompt_tokens_mean or 0) + (s.latency.completion_tokens_mean or 0),
            "per_1000": s.cost.per_1000,
            "step_accuracy": s.step_accuracy,
        }
        for name, s in summary.systems.items()
    }
    cmp = next((c for c in summary.comparisons if {c.a, c.b} == {"pipeline", "generalist"}), None)
    sign = 1.0 if cmp is None or cmp.a == "pipeline" else -1.0
    return {
        "n": summary.n_items,
        "metric": summary.metric,
        "systems": systems,
        "difference": None if cmp is None else sign * cmp.difference,
        "ci": None if cmp is None else sorted([sign * cmp.bootstrap.low, sign * cmp.bootstrap.high]),
        "confidence": None if cmp is None else cmp.bootstrap.confidence,
        "vote": vote_tradeoff(records, metric),
    }


def vote_tradeoff(records: list[dict[str, Any]], metric: Any) -> list[dict[str, Any]]:
    """Share escalated, intent accuracy and the answer's metric at the file's threshold and lower ones.

    At a lower threshold a request escalates only if it escalated at the file's threshold, so every figure comes
    from the recorded votes: the majority answer where the agreement clears the lower threshold, else the
    generalist's (recorded) answer; the rest of the answer is unchanged (no step reads the intent).
    """
    rows = []
    latest = {
        (r.get("item_id"), r.get("repeat")): r
        for r in records
        if r.get("system") == "pipeline" and r.get("perturbation") in (None, "original")
    }
    votes = []
    for r in latest.values():
        trace = {t["id"]: t for t in r.get("trace") or []}
        vote = trace.get("intent")
        if vote is None or r.get("error"):
            continue
        votes.append((r, vote))
    for tau in (VOTE_THRESHOLD, *_LOWER_THRESHOLDS):
        escalated = intent_ok = 0
        scores = []
        for r, vote in votes:
            detail = vote.get("detail") or {}
            keep = detail.get("majority") is not None and float(detail.get("agreement", 0)) >= tau
            intent = detail.get("majority") if keep else r["step_outputs"].get("intent")
            escalated += not keep
            intent_ok += intent == (r.get("step_references") or {}).get("intent")
            answer = dict(r["prediction"]) if isinstance(r.get("prediction"), dict) else None
            if answer is not None:
                answer["intent"] = intent
            scores.append(float(metric.score(answer, r["reference"])))
        n = len(votes)
        rows.append(
            {
                "threshold": tau,
                "measured": tau == VOTE_THRESHOLD,
                "n": n,
                "escalated": escalated / n if n else None,
                "intent_accuracy": intent_ok / n if n else None,
                "metric": sum(scores) / n if n else None,
            }
        )
    return rows


@dataclass
class ComposedSection:
    """The composed task's section of the demo report."""

    lines: list[str]
    head: list[str]
    rows: list[list[str]]
    vote_head: list[str]
    vote_rows: list[list[str]]

    def markdown(self) -> str:
        parts = ["## Composed task: the specialists as one pipeline vs one generalist prompt\n\n"]
        parts += [f"{x}\n\n" for x in self.lines[:1]]
        parts += [md_table(self.head, self.rows), "\n", *[f"- {x}\n" for x in self.lines[1:]], "\n"]
        parts += [md_table(self.vote_head, self.vote_rows)]
        return "".join(parts)

    def html(self) -> str:
        from cadre.evaluate import inline_md

        return "\n".join(
            [
                "<h2>Composed task: the specialists as one pipeline vs one generalist prompt</h2>",
                *[f"<p>{inline_md(x)}</p>" for x in self.lines[:1]],
                markdown_html_table(self.head, self.rows),
                "<ul>",
                *[f"<li>{inline_md(x)}</li>" for x in self.lines[1:]],
                "</ul>",
                markdown_html_table(self.vote_head, self.vote_rows),
            ]
        )


def composed_section(out: Path) -> ComposedSection | None:
    """The section from ``eval/composed/composed.json``, or None when the composed step did not run."""
    path = out / "eval" / "composed" / _RESULT
    if not path.is_file():
        return None
    res = json.loads(path.read_text(encoding="utf-8"))
    systems = res["systems"]
    intro = (
        f"{res['n']} support messages with an invoice pasted in; the answer is one JSON object (intent, invoice "
        "number, date, vendor, total, currency). `pipeline` is the `support` pipeline of `ecosystem.yaml` "
        f"(`cadre pipeline show {out / 'ecosystem.yaml'} support`): two `regex_extract` tools split the message "
        f"from the invoice, the intents specialist votes ({VOTE_K} samples, escalating to the generalist below "
        f"{VOTE_THRESHOLD:.0%} agreement), the invoices specialist extracts the fields, the normalize specialist "
        f"normalizes the date and the total. `generalist` answers everything in one prompt ({_SHOTS}-shot)."
    )
    head = [
        "system",
        "fields right",
        "answers all right",
        "failed",
        "p50 latency",
        "tokens / request",
        "$ / 1k requests",
    ]
    rows = [
        [
            name,
            percent(s["metric"], unit="%"),
            percent(s["all_fields"], unit="%"),
            str(s["failures"]),
            seconds_plain(s["p50_s"]),
            f"{s['tokens']:.0f}",
            usd_rounded(s["per_1000"]),
        ]
        for name, s in systems.items()
    ]
    lines = [intro]
    if res["difference"] is not None and res["ci"] is not None:
        lo, hi = res["ci"]
        excludes = lo > 0 or hi < 0
        lines.append(
            f"Pipeline − generalist: {points(res['difference'], unit=' pts')} of fields right, "
            f"{res['confidence']:.0%} paired bootstrap CI [{points(lo)}, {points(hi)}] pts: "
            + (
                "the interval excludes zero."
                if excludes
                else f"the interval includes zero on {res['n']} items."
            )
        )
    steps = systems.get("pipeline", {}).get("step_accuracy") or {}
    if steps:
        lines.append(
            "Pipeline per step (share correct): "
            + ", ".join(f"{k} {percent(v, unit='%')}" for k, v in steps.items())
        )
    vote_head = [
        "vote threshold",
        "escalated to the generalist",
        "intent right",
        "fields right (whole answer)",
    ]
    vote_rows = [
        [
            f"{v['threshold']:.0%}" + (" (run)" if v["measured"] else " (from the same votes)"),
            percent(v["escalated"], unit="%"),
            percent(v["intent_accuracy"], unit="%"),
            percent(v["metric"], unit="%"),
        ]
        for v in res["vote"]
    ]
    lines.append(
        "The vote's trade-off: a lower threshold escalates fewer requests (cheaper) and keeps the specialists' "
        "majority; each escalation is one more generalist call."
    )
    return ComposedSection(lines, head, rows, vote_head, vote_rows)
