"""A scripted ModelCaller for the executor's mechanics: answers by model name, optional delay, every call logged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cadre.ecosystem import ModelReply, ModelRequest
from cadre.runtime.protocol import Completion, Usage

Answer = str | list[str] | Callable[[ModelRequest], str]


class ScriptedModels:
    """``answers[model]``: a fixed text, a list consumed one per sample, or a function of the request."""

    def __init__(self, answers: Mapping[str, Answer], *, delay_s: float = 0.0) -> None:
        self.answers = {k: (list(v) if isinstance(v, list) else v) for k, v in answers.items()}
        self.delay_s = delay_s
        self.calls: list[ModelRequest] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelReply:
        with self._lock:
            self.calls.append(request)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            script: Any = self.answers[request.model]
            answers = [script.pop(0) if isinstance(script, list) else script for _ in range(request.n)]
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            prompt = sum(len(m["content"].split()) for m in request.messages)
            completions = []
            for answer in answers:
                text = answer(request) if callable(answer) else answer
                completions.append(
                    Completion(text=text, usage=Usage(prompt, len(text.split())), model=request.model)
                )
            return ModelReply(completions, request.model, None, cost_usd=0.001)
        finally:
            with self._lock:
                self.active -= 1
