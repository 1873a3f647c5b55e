"""The ``react`` step: a model calls listed tools or answers, turn by turn, within fixed bounds.

Each turn the model replies with one JSON object: ``{"tool": NAME, "args": {...}}`` to call a tool, or
``{"answer": ...}`` to finish (decoding is constrained to a JSON object where the backend can). The tool's result,
or the problem with the reply, goes back as the next user message (``Observation: ...``), so a model can recover
from a bad call. The loop ends with the answer, or with an error when it runs out of turns, tokens or time;
either way the transcript is in the step's trace (``detail.transcript``). The pattern is ReAct (Yao et al., ICLR
2023); the JSON action format is cadre's own.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from cadre.ecosystem.models import ModelCaller, ModelRequest
from cadre.ecosystem.tools import TOOLS
from cadre.errors import PipelineError
from cadre.runtime.protocol import ChatMessage, SamplingParams

if TYPE_CHECKING:
    from cadre.ecosystem.pipeline_spec import ReactStep
    from cadre.ecosystem.trace import StepTrace

__all__ = ["run_react"]

_OBSERVATION_CHARS = 2000


def _instructions(step: ReactStep) -> str:
    lines = [
        "Solve the task. Each turn, reply with exactly one JSON object and nothing else:",
        '{"tool": "<name>", "args": {...}} to use a tool, or {"answer": "<your answer>"} when you know it.',
        "Tools:",
    ]
    for name in step.tools:
        tool = TOOLS.get(name)
        args = ", ".join([*tool.required, *(f"{a}?" for a in tool.optional if a not in tool.literal)])
        lines.append(f"- {name}({args}): {tool.description}")
    return "\n".join(lines)


def _act(step: ReactStep, text: str) -> tuple[str, Any]:
    """("answer", value) or ("observation", text for the model)."""
    try:
        reply = json.loads(text.strip())
    except json.JSONDecodeError:
        return (
            "observation",
            'error: reply with one JSON object: {"tool": ..., "args": {...}} or {"answer": ...}',
        )
    if not isinstance(reply, dict):
        return "observation", "error: the reply must be a JSON object"
    if "answer" in reply:
        return "answer", reply["answer"]
    name = reply.get("tool")
    if name not in step.tools:
        return "observation", f"error: no tool {name!r}; the tools are {', '.join(step.tools)}"
    tool = TOOLS.get(str(name))
    args = reply.get("args") or {}
    if not isinstance(args, dict):
        return "observation", "error: args must be a JSON object"
    fixed = [a for a in args if a in tool.literal]
    if fixed:
        return "observation", f"error: {name} does not take {fixed[0]!r} from you"
    try:
        tool.check_args(args)
        result = tool.fn(args, tuple(step.allowed_hosts))
    except Exception as err:  # a tool's failure is an observation the model can act on
        return "observation", f"error: {type(err).__name__}: {err}"
    return "observation", json.dumps(result, ensure_ascii=False)[:_OBSERVATION_CHARS]


def run_react(step: ReactStep, prompt: str, models: ModelCaller, trace: StepTrace) -> Any:
    """Run the loop (see the module docstring) and return the answer.

    Raises:
        PipelineError: no answer within ``max_turns``, ``max_total_tokens`` or ``timeout_s``.
    """
    messages: list[ChatMessage] = [
        {"role": "system", "content": _instructions(step)},
        {"role": "user", "content": prompt},
    ]
    transcript: list[dict[str, Any]] = []
    trace.detail = {"transcript": transcript}
    deadline = time.perf_counter() + step.timeout_s
    for turn in range(step.max_turns):
        if time.perf_counter() > deadline:
            raise PipelineError(f"react: no answer within {step.timeout_s:g} s ({turn} turns)")
        used = trace.prompt_tokens + trace.completion_tokens
        if used >= step.max_total_tokens:
            raise PipelineError(f"react: no answer within {step.max_total_tokens} tokens ({turn} turns)")
        request = ModelRequest(
            model=step.model,
            messages=list(messages),
            params=SamplingParams(max_tokens=step.max_tokens),
            want_json=True,
        )
        reply = models.call(request)
        trace.add_reply(reply)
        text = reply.completions[0].text
        kind, value = _act(step, text)
        transcript.append({"turn": turn + 1, "reply": text, kind: value})
        if kind == "answer":
            return value
        messages += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Observation: {value}"},
        ]
    raise PipelineError(f"react: no answer within {step.max_turns} turns (the transcript is in the trace)")
