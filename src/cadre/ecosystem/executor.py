"""Running a pipeline: steps in dependency order, independent ones concurrently, each traced.

    runner = PipelineRunner(spec.pipelines, LocalModels(spec))
    result = runner.run("support", {"text": "Invoice INV-7 for $120 is due 5 March 2024; why was I charged twice?"})
    result.output            # the answer (a dict when the pipeline's output is structured)
    result.steps             # one StepTrace per step: model, adapter, latency, tokens, cost, escalations

A step whose ``when:`` is false is skipped (its output is None), and so is every step that reads a skipped one. A step that fails ends the run with a
:class:`~cadre.errors.PipelineError` (input, parsing, tools) or the model's own error (``BackendError``), its
message naming the pipeline and the step; the trace so far is on the error as ``steps``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from cadre.ecosystem.answers import check_input, parse_answer
from cadre.ecosystem.models import GENERALIST, ModelCaller, ModelReply, ModelRequest
from cadre.ecosystem.pipeline_spec import (
    INPUT,
    CallStep,
    PipelineSpec,
    ReactStep,
    RetrieveStep,
    ToolStep,
    VoteStep,
)
from cadre.ecosystem.react import run_react
from cadre.ecosystem.trace import StepTrace
from cadre.errors import CadreError, PipelineError, did_you_mean
from cadre.runtime.protocol import ChatMessage, SamplingParams

__all__ = ["PipelineResult", "PipelineRunner", "StepTrace"]

_RETRY_TEMPERATURE = 0.7  # a greedy retry would repeat the same answer: retries sample


@dataclass
class PipelineResult:
    """A pipeline's answer and its trace."""

    run_id: str
    pipeline: str
    output: Any
    structured: bool
    steps: list[StepTrace]
    citations: list[dict[str, Any]]
    latency_s: float
    outputs: dict[str, Any] = field(default_factory=dict)
    """Every step's output by step id (None for a skipped step): what per-step accuracy is scored on."""

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def cost_usd(self) -> float | None:
        costs = [s.cost_usd for s in self.steps if s.cost_usd is not None]
        return sum(costs) if costs else None

    def to_dict(self, *, trace: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "output": self.output,
            "citations": self.citations,
            "latency_s": round(self.latency_s, 6),
            "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            "cost_usd": self.cost_usd,
        }
        if trace:
            out["steps"] = [s.to_dict() for s in self.steps]
        return out


def _fail(err: BaseException, message: str, traces: list[StepTrace]) -> BaseException:
    """The error a run raises, with the trace so far as ``steps``: the step's own CadreError type with the
    pipeline and step named (a model failure stays a BackendError), or, for anything else (a timeout, the
    server's own errors), the exception itself, so that its meaning is kept."""
    new: BaseException = err
    if isinstance(err, CadreError):
        try:
            new = type(err)(message)
        except TypeError:
            new = PipelineError(message)
    new.steps = traces  # type: ignore[attr-defined]
    return new


class PipelineRunner:
    """Runs an ecosystem's pipelines with a :class:`~cadre.ecosystem.models.ModelCaller`.

    Args:
        pipelines: the ecosystem's ``pipelines`` by name.
        models: calls a model by name (the server's models, or :class:`~cadre.ecosystem.models.LocalModels`).
        open_corpus: opens a corpus by name (default ``cadre.knowledge.open_corpus``); every corpus a retrieve
            step names is opened here, so a missing one fails now rather than mid-run.
        max_workers: threads running independent steps at once (shared by concurrent runs).
    """

    def __init__(
        self,
        pipelines: Mapping[str, PipelineSpec],
        models: ModelCaller,
        *,
        open_corpus: Callable[[str], Any] | None = None,
        max_workers: int = 8,
    ) -> None:
        self.pipelines = dict(pipelines)
        self.models = models
        self._corpora: dict[str, Any] = {}
        corpora = sorted(
            {s.corpus for p in self.pipelines.values() for s in p.steps if isinstance(s, RetrieveStep)}
        )
        if corpora:
            if open_corpus is None:
                from cadre.knowledge import open_corpus as _open

                open_corpus = _open
            for name in corpora:
                self._corpora[name] = open_corpus(name)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cadre-pipeline")
        self._corpus_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for corpus in self._corpora.values():
            close = getattr(corpus, "close", None)
            if close is not None:
                close()

    def spec(self, name: str) -> PipelineSpec:
        if name not in self.pipelines:
            raise did_you_mean(name, self.pipelines, kind="pipeline")
        return self.pipelines[name]

    def run(self, name: str, data: Any) -> PipelineResult:
        """Run pipeline ``name`` on ``data`` (a mapping of its input fields, or a string for one text field).

        Raises:
            NotFoundError: no such pipeline.
            PipelineError: the input does not match the pipeline's input schema, an answer does not parse, a
                tool fails (the message names the step).
            BackendError: a model failed.
        """
        spec = self.spec(name)
        t0 = time.perf_counter()
        try:
            values: dict[str, Any] = {INPUT: check_input(data, spec.input)}
        except ValueError as err:
            raise PipelineError(f"pipeline {name!r}: {err}") from None
        traces: dict[str, StepTrace] = {}
        order = [s.id for s in spec.steps]
        pending = list(order)
        done: set[str] = set()
        running: dict[Future[Any], str] = {}
        citations: list[dict[str, Any]] = []

        def finish(sid: str, value: Any) -> None:
            values[sid] = value
            done.add(sid)
            if isinstance(spec.step(sid), RetrieveStep) and value is not None:
                citations.extend(value["citations"])

        try:
            while pending or running:
                ready = [sid for sid in pending if spec.deps(sid) <= done]
                runnable = []
                for sid in ready:
                    pending.remove(sid)
                    traces[sid] = StepTrace(sid, spec.step(sid).kind)
                    cond = spec.condition(sid)
                    upstream = sorted(d for d in spec.reads(sid) if traces[d].status == "skipped")
                    if upstream or (cond is not None and not cond(values)):
                        traces[sid].status = "skipped"
                        traces[sid].detail = {
                            "because": f"{', '.join(upstream)} skipped" if upstream else "when"
                        }
                        finish(sid, None)
                    else:
                        runnable.append(sid)
                if len(runnable) == 1 and not running:
                    sid = runnable[0]  # alone: run it here, no thread hop
                    finish(sid, self._run_step(spec, sid, dict(values), traces[sid]))
                    continue
                for sid in runnable:
                    running[self._pool.submit(self._run_step, spec, sid, dict(values), traces[sid])] = sid
                if running:
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for fut in finished:
                        sid = running.pop(fut)
                        finish(sid, fut.result())
        except Exception as err:
            for fut in running:
                fut.cancel()
            failed = next((t for t in traces.values() if t.status == "failed"), None)
            where = f"step {failed.id!r}: " if failed else ""
            trace_list = [traces[s] for s in order if s in traces]
            raise _fail(err, f"pipeline {name!r}: {where}{err}", trace_list) from None
        return PipelineResult(
            run_id=uuid.uuid4().hex[:16],
            pipeline=name,
            output=spec.render_output(values),
            structured=spec.is_structured(),
            steps=[traces[s] for s in order],
            citations=citations,
            latency_s=time.perf_counter() - t0,
            outputs={sid: values.get(sid) for sid in order},
        )

    # --- steps ----------------------------------------------------------------------------------------------------

    def _run_step(self, spec: PipelineSpec, sid: str, values: dict[str, Any], trace: StepTrace) -> Any:
        step = spec.step(sid)
        t0 = time.perf_counter()
        try:
            if isinstance(step, VoteStep):
                return self._vote(spec, step, values, trace)
            if isinstance(step, CallStep):
                return self._call(spec, step, values, trace)
            if isinstance(step, ReactStep):
                return run_react(step, spec.template(sid, "prompt").render(values), self.models, trace)
            if isinstance(step, RetrieveStep):
                return self._retrieve(spec, step, values, trace)
            return self._tool(spec, step, values, trace)
        except Exception as err:
            trace.status, trace.error = "failed", str(err)
            raise
        finally:
            trace.latency_s = time.perf_counter() - t0

    @staticmethod
    def _request(spec: PipelineSpec, step: CallStep, values: dict[str, Any]) -> ModelRequest:
        messages: list[ChatMessage] = []
        if step.system is not None:
            messages.append({"role": "system", "content": spec.template(step.id, "system").render(values)})
        messages.append({"role": "user", "content": spec.template(step.id, "prompt").render(values)})
        return ModelRequest(
            model=step.model,
            messages=messages,
            params=SamplingParams(max_tokens=step.max_tokens, temperature=step.temperature),
            json_schema=step.json_schema,
            want_json=step.parse == "json",
            want_number=step.parse == "number",
            labels=tuple(step.labels),
        )

    def _call(self, spec: PipelineSpec, step: CallStep, values: dict[str, Any], trace: StepTrace) -> Any:
        request = self._request(spec, step, values)
        params = request.params
        attempts = 1 + (step.retries if step.on_failure == "retry" else 0)
        problem = ""
        for attempt in range(attempts):
            if attempt:
                t = max(step.temperature, _RETRY_TEMPERATURE)
                request = replace(request, params=replace(params, temperature=t, seed=attempt))
            reply = self.models.call(request)
            trace.add_reply(reply)
            try:
                return self._parse(step, reply)
            except ValueError as err:
                problem = f"{reply.model}: {err}"
                if attempt + 1 < attempts:
                    trace.escalations.append(f"retry ({problem})")
        if step.on_failure == "escalate" and step.model != GENERALIST:
            return self._escalate(step, request, trace, problem)
        raise PipelineError(problem)

    def _vote(self, spec: PipelineSpec, step: VoteStep, values: dict[str, Any], trace: StepTrace) -> Any:
        request = replace(self._request(spec, step, values), n=step.k)
        reply = self.models.call(request)
        trace.add_reply(reply)
        counts: dict[str, int] = {}
        parsed: dict[str, Any] = {}
        for c in reply.completions:
            try:
                value = parse_answer(c.text, step.parse, json_schema=step.json_schema, labels=step.labels)
            except ValueError:
                continue  # an unparsable sample is a vote for nothing
            key = json.dumps(value, sort_keys=True, ensure_ascii=False)
            counts[key] = counts.get(key, 0) + 1
            parsed[key] = value
        best = max(counts, key=lambda k: counts[k]) if counts else None
        agreement = counts[best] / step.k if best is not None else 0.0
        trace.detail = {
            "k": step.k,
            "agreement": round(agreement, 4),
            "votes": dict(sorted(counts.items())),
            "majority": parsed[best] if best is not None else None,  # what a lower threshold would keep
        }
        if best is not None and agreement >= step.threshold:
            return parsed[best]
        problem = f"{reply.model}: {agreement:.0%} of {step.k} samples agree (threshold {step.threshold:.0%})"
        if step.on_disagreement == "escalate" and step.model != GENERALIST:
            return self._escalate(step, request, trace, problem)
        raise PipelineError(problem)

    def _escalate(self, step: CallStep, request: ModelRequest, trace: StepTrace, problem: str) -> Any:
        """Ask the generalist once (one greedy sample) after ``problem``; its answer must parse too."""
        trace.escalations.append(f"generalist ({problem})")
        greedy = replace(request.params, temperature=0.0, seed=None)
        reply = self.models.call(replace(request, model=GENERALIST, n=1, params=greedy))
        trace.add_reply(reply)
        try:
            return self._parse(step, reply)
        except ValueError as err:
            raise PipelineError(f"{reply.model}: {err}") from None

    @staticmethod
    def _parse(step: CallStep, reply: ModelReply) -> Any:
        return parse_answer(
            reply.completions[0].text, step.parse, json_schema=step.json_schema, labels=step.labels
        )

    def _retrieve(
        self, spec: PipelineSpec, step: RetrieveStep, values: dict[str, Any], trace: StepTrace
    ) -> Any:
        query = spec.template(step.id, "query").render(values)
        corpus = self._corpora[step.corpus]
        with self._corpus_lock:  # one corpus object is not shared across threads unguarded
            passages = corpus.search(query, k=step.top_k)
        trace.detail = {"corpus": step.corpus, "passages": len(passages)}
        text = "\n\n".join(f"[{i}] {p.chunk.text.strip()}" for i, p in enumerate(passages, 1))
        return {"passages": text, "citations": [{"corpus": step.corpus, **p.citation()} for p in passages]}

    def _tool(self, spec: PipelineSpec, step: ToolStep, values: dict[str, Any], trace: StepTrace) -> Any:
        tool = step.resolve_tool()
        args: dict[str, Any] = {}
        for key, value in step.args.items():
            if isinstance(value, str) and key not in tool.literal:
                value = spec.template(step.id, f"args.{key}").value(values)
            args[key] = value
        trace.detail = {"tool": tool.name}
        try:
            return tool.fn(args, tuple(step.allowed_hosts))
        except Exception as err:  # a tool is third-party code: any failure is the step's error
            raise PipelineError(f"tool {tool.name!r} failed: {type(err).__name__}: {err}") from None
