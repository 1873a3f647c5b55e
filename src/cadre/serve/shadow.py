"""Shadow mode: a specialist answers the same requests as the generalist, off the request path, and both answers
are logged side by side (the ecosystem's ``capture.shadow`` entries, docs/flywheel.md).

On the request path the gateway only asks :meth:`ShadowRunner.plan` whom to shadow (and, for a ``routed``
shadow, lets the generalist answer what the router chose the specialist for). Once the generalist's answer is
complete, :meth:`ShadowRunner.launch` starts the shadow generation as a background task and returns at once;
when ``max_in_flight`` shadows of that specialist are already running, the request is not shadowed (counted as
dropped). The shadow's answer goes to the capture recorder (redacted there, like every record) and its agreement
with the generalist's answer is counted on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cadre.ecosystem.spec import AUTO_MODEL
from cadre.route import GENERALIST
from cadre.runtime.protocol import Completion
from cadre.serve.protocol import CadreInfo
from cadre.serve.served_models import Snapshot, Target
from cadre.serve.telemetry import Metrics
from cadre.traffic import Recorder, ShadowRecord

__all__ = ["Agreement", "ShadowPlan", "ShadowRunner"]

log = logging.getLogger("cadre.serve")

Agreement = Callable[[str, str], float]
"""``(shadow answer, generalist answer) -> score in [0, 1]``: the live agreement counted on /metrics."""

Generate = Callable[[Target], Awaitable[Completion]]
"""Runs the request on a target (the gateway's own submit path, with the target's timeout)."""


@dataclass
class ShadowPlan:
    """Who answers, and who answers the same request in shadow."""

    target: Target
    info: CadreInfo
    shadows: list[Target]


class ShadowRunner:
    """Background shadow generations of one gateway, bounded per specialist; :meth:`close` cancels them."""

    def __init__(
        self, metrics: Metrics, *, agreement: Agreement | None = None, seed: int | None = None
    ) -> None:
        self._metrics = metrics
        self._agreement = agreement
        self._rng = random.Random(seed)
        self._running: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    def plan(self, snap: Snapshot, target: Target, info: CadreInfo) -> ShadowPlan:
        """The answer's target (the generalist in place of a ``routed`` shadow) and the shadows to run."""
        cap = snap.spec.capture
        gen = snap.generalist
        if cap is None or not cap.enabled or not cap.shadow or gen is None:
            return ShadowPlan(target, info, [])
        shadows: list[Target] = []
        if target.kind == "specialist" and info.requested == AUTO_MODEL and not info.fallback:
            entry = cap.shadowed(target.name)
            if entry is not None and entry.scope == "routed":
                info = CadreInfo(
                    route=GENERALIST,
                    reason=f"{target.name} runs in shadow ({info.reason}); the generalist answers",
                    score=info.score,
                    requested=info.requested,
                )
                if self._sampled(entry.sample_rate):
                    shadows.append(target)
                target = gen
        if target.kind == "generalist" and not info.fallback:
            for entry in cap.shadow:
                s = snap.targets.get(entry.specialist)
                if entry.scope == "generalist" and s is not None and self._sampled(entry.sample_rate):
                    shadows.append(s)
        return ShadowPlan(target, info, shadows)

    def _sampled(self, rate: float) -> bool:
        return rate >= 1.0 or self._rng.random() < rate

    def launch(
        self,
        shadows: list[Target],
        *,
        snap: Snapshot,
        request_id: str,
        answer: str,
        recorder: Recorder,
        generate: Generate,
    ) -> None:
        """Start each shadow in the background (or count it dropped when its specialist is busy); never waits."""
        cap = snap.spec.capture
        for target in shadows:
            entry = cap.shadowed(target.name) if cap is not None else None
            if entry is None:
                continue
            if self._running[target.name] >= entry.max_in_flight:
                self._metrics.shadow_requests.labels(target.name, "dropped").inc()
                continue
            self._running[target.name] += 1
            task = asyncio.get_running_loop().create_task(
                self._one(target, request_id, answer, recorder, generate)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(
        self, target: Target, request_id: str, answer: str, recorder: Recorder, generate: Generate
    ) -> None:
        name = target.name
        started = time.perf_counter()
        try:
            completion = await generate(target)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a shadow's failure is logged as such; it never reaches a client
            log.warning("shadow %r failed on %s: %s", name, request_id, err)
            self._metrics.shadow_requests.labels(name, "failed").inc()
            recorder.offer(
                ShadowRecord(
                    request_id=request_id,
                    specialist=name,
                    response="",
                    latency_s=time.perf_counter() - started,
                    error=f"{type(err).__name__}: {err}"[:500],
                )
            )
            return
        finally:
            self._running[name] -= 1
        usage = completion.usage
        recorder.offer(
            ShadowRecord(
                request_id=request_id,
                specialist=name,
                response=completion.text,
                finish_reason=completion.finish_reason,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_s=time.perf_counter() - started,
                cost=recorder.cost(name, usage.prompt_tokens, usage.completion_tokens),
            )
        )
        self._metrics.shadow_requests.labels(name, "answered").inc()
        if self._agreement is not None:
            self._metrics.shadow_agreement.labels(name).inc(self._agreement(completion.text, answer))

    def in_flight(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel the shadows still running (their answers are not logged)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
