"""The gateway's capture hook: hands finished answers to a ``cadre.traffic.Recorder`` when the ecosystem's
``capture:`` block asks for it. On the request path it only decides and queues; redaction and writing happen on
the recorder's thread (docs/flywheel.md)."""

from __future__ import annotations

import logging
import time
from typing import Any

from cadre.ecosystem.spec import EcosystemSpec
from cadre.runtime.protocol import Completion
from cadre.serve.protocol import CadreInfo
from cadre.serve.telemetry import Metrics
from cadre.traffic import Recorder, TrafficRecord
from cadre.traffic.location import is_postgres

__all__ = ["Capture"]

log = logging.getLogger("cadre.serve")


class Capture:
    """Off until :meth:`sync` sees a spec with capture on; :meth:`close` writes what is queued and stops."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.recorder: Recorder | None = None

    def sync(self, spec: EcosystemSpec) -> None:
        """Start capture when ``spec`` turns it on; apply a reloaded ``capture:`` block (its store and queue size
        take effect at the next restart)."""
        cap = spec.capture
        if self.recorder is not None:
            self.recorder.update(cap or self.recorder.spec.model_copy(update={"enabled": False}))
        elif cap is not None and cap.enabled:
            self.recorder = Recorder(cap, cap.store if is_postgres(cap.store) else spec.resolve(cap.store))
            self.recorder.start()
            self._metrics.watch_capture(self.recorder.stats)
            log.info("capture on: answers of %s to %s", ", ".join(cap.models), self.recorder.name)

    def record(
        self,
        request_id: str,
        kind: str,
        original: Any,
        model: str,
        info: CadreInfo,
        completion: Completion,
        started: float,
        *,
        force: bool = False,
    ) -> None:
        """Queue one finished answer (``original``: the chat messages or the completion prompt) if wanted
        (``force``: whatever ``capture.models`` and sampling say, for an answer a shadow is compared with)."""
        rec = self.recorder
        if rec is None or not (force or rec.wants(model)):
            return
        try:  # the answer is already on its way: a capture problem must not fail the request
            usage = completion.usage
            messages = list(original) if kind == "chat" else [{"role": "user", "content": original}]
            rec.offer(
                TrafficRecord(
                    request_id=request_id,
                    endpoint=kind,
                    requested=info.requested,
                    model=model,
                    messages=messages,
                    response=completion.text,
                    reason=info.reason,
                    score=info.score,
                    fallback=info.fallback,
                    finish_reason=completion.finish_reason,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    latency_s=time.perf_counter() - started,
                    cost=rec.cost(model, usage.prompt_tokens, usage.completion_tokens),
                    tool_calls=[
                        {"id": c.id, "name": c.name, "arguments": c.arguments}
                        for c in completion.tool_calls or []
                    ],
                )
            )
        except Exception:
            log.exception("capture: could not queue the record of %s", request_id)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
