"""Prometheus metrics of one server (own registry, so several apps can live in one process, e.g. in tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Requests, tokens, latency, routes, fallbacks and the queue of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cadre_requests", "HTTP API requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.routed = Counter(
            "cadre_routed_requests",
            "requests answered, by route (who answered) and how it was chosen",
            ["route", "how"],
            registry=r,
        )
        self.tokens = Counter(
            "cadre_tokens", "tokens by route and kind (prompt/completion)", ["route", "kind"], registry=r
        )
        self.latency = Histogram(
            "cadre_request_seconds",
            "end-to-end request latency",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "cadre_time_to_first_token_seconds",
            "streaming time to first token",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.generation = Histogram(
            "cadre_generation_seconds",
            "time spent generating, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.router_latency = Histogram(
            "cadre_router_seconds",
            "time spent choosing a route for model=auto",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.fallbacks = Counter(
            "cadre_fallbacks",
            "specialist requests answered by the generalist instead",
            ["specialist", "cause"],
            registry=r,
        )
        self.rejected = Counter("cadre_rejected", "requests refused because the queue was full", registry=r)
        self.cancelled = Counter(
            "cadre_cancelled", "generations stopped because the client went away", registry=r
        )
        self.queue_depth = Gauge("cadre_queue_depth", "requests admitted and not finished", registry=r)
        self.in_flight = Gauge(
            "cadre_generations_in_flight",
            "generations submitted to a loaded model and not finished",
            ["model"],
            registry=r,
        )
        self.pipeline_steps = Counter(
            "cadre_pipeline_steps",
            "pipeline steps run, by pipeline, step and status (ok, skipped, failed)",
            ["pipeline", "step", "status"],
            registry=r,
        )
        self.pipeline_step_seconds = Histogram(
            "cadre_pipeline_step_seconds",
            "wall time of a pipeline step",
            ["pipeline", "step"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pipeline_escalations = Counter(
            "cadre_pipeline_escalations",
            "retries and escalations to the generalist of pipeline steps",
            ["pipeline", "step"],
            registry=r,
        )
        self.reloads = Counter("cadre_reloads", "ecosystem reloads by outcome", ["outcome"], registry=r)
        self.shadow_requests = Counter(
            "cadre_shadow_requests",
            "shadow generations by specialist and outcome (answered, failed, dropped: its max_in_flight "
            "shadows were busy)",
            ["specialist", "outcome"],
            registry=r,
        )
        self.shadow_agreement = Counter(
            "cadre_shadow_agreement",
            "summed agreement (exact match, 0 or 1) of shadow answers with the generalist's, by specialist; "
            "divide by cadre_shadow_requests_total{outcome=answered} for the rate",
            ["specialist"],
            registry=r,
        )
        self.feedback = Counter(
            "cadre_feedback",
            "feedback items received on POST /v1/feedback, by outcome",
            ["outcome"],
            registry=r,
        )

    def watch_capture(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Expose a capture recorder's counts (``cadre.traffic.Recorder.stats``), read at each scrape."""
        self.registry.register(_CaptureCollector(stats))

    def watch_engines(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Expose the engines' prompt-lookup and prefix-sharing counters and each specialist's adapter tax, read
        at each scrape (``stats`` returns ``{"lookup": {model: LookupStats}, "prefix": {model: PrefixStats},
        "adapter_tax": {specialist: (tax, merged)}}``)."""
        self.registry.register(_EngineCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CaptureCollector(Collector):
    """``cadre_capture_records_total{outcome}``, ``cadre_capture_redactions_total{type}``,
    ``cadre_capture_queue_depth``: the capture writer's own counts, so the request path updates no metric."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        s = self._stats()
        records = CounterMetricFamily(
            "cadre_capture_records",
            "captured records by outcome (written, dropped when the queue was full, "
            "sampled_out, failed, pruned by retention)",
            labels=["outcome"],
        )
        for outcome in ("written", "dropped", "sampled_out", "failed", "pruned"):
            records.add_metric([outcome], s.get(outcome, 0))
        yield records
        redactions = CounterMetricFamily(
            "cadre_capture_redactions", "PII spans replaced before writing, by type", labels=["type"]
        )
        for kind, n in sorted(s.get("redactions", {}).items()):
            redactions.add_metric([kind], n)
        yield redactions
        yield GaugeMetricFamily(
            "cadre_capture_queue_depth", "records waiting for the writer", s.get("queued", 0)
        )


class _EngineCollector(Collector):
    """``cadre_prompt_lookup_tokens_total{model,kind}`` (drafted, accepted), ``cadre_prompt_lookup_drafts_total
    {model}``, ``cadre_prompt_tokens_total{model,kind}`` (computed, reused) and
    ``cadre_adapter_tax{specialist,merged}``. Labels are the loaded models and the spec's
    specialists: bounded by the ecosystem file, never by requests."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        s = self._stats()
        tokens = CounterMetricFamily(
            "cadre_prompt_lookup_tokens",
            "prompt-lookup draft tokens per loaded model: drafted, and accepted by the model's own greedy choice",
            labels=["model", "kind"],
        )
        drafts = CounterMetricFamily(
            "cadre_prompt_lookup_drafts", "decode steps that carried a prompt-lookup draft", labels=["model"]
        )
        for model, st in sorted(s.get("lookup", {}).items()):
            tokens.add_metric([model, "drafted"], st.drafted)
            tokens.add_metric([model, "accepted"], st.accepted)
            drafts.add_metric([model], st.drafts)
        yield tokens
        yield drafts
        prompt = CounterMetricFamily(
            "cadre_prompt_tokens",
            "prompt tokens per loaded model: computed by a prefill, or reused from the cached cells of a running "
            "request with the same prompt start",
            labels=["model", "kind"],
        )
        for model, st in sorted(s.get("prefix", {}).items()):
            prompt.add_metric([model, "computed"], st.computed)
            prompt.add_metric([model, "reused"], st.reused)
        yield prompt
        tax = GaugeMetricFamily(
            "cadre_adapter_tax",
            "decode slowdown a specialist pays for its adapter (base ÷ with adapter, measured per shape; "
            "1 when merged); specialists whose shape was not measured are absent",
            labels=["specialist", "merged"],
        )
        for name, (value, merged) in sorted(s.get("adapter_tax", {}).items()):
            tax.add_metric([name, "true" if merged else "false"], value)
        yield tax
