"""A pipeline's DAG for people: as text (one line per step) and as a Mermaid flowchart."""

from __future__ import annotations

from cadre.ecosystem.pipeline_spec import (
    INPUT,
    CallStep,
    PipelineSpec,
    ReactStep,
    RetrieveStep,
    ToolStep,
    VoteStep,
)

__all__ = ["pipeline_mermaid", "pipeline_text"]


def _what(step: CallStep | ReactStep | RetrieveStep | ToolStep) -> str:
    if isinstance(step, VoteStep):
        return f"vote {step.model} x{step.k} (agree >= {step.threshold:g}, else {step.on_disagreement})"
    if isinstance(step, ReactStep):
        return f"react {step.model} with {', '.join(step.tools)} (at most {step.max_turns} turns)"
    if isinstance(step, CallStep):
        parse = f", parse {step.parse}" if step.parse != "text" else ""
        fail = f", on failure {step.on_failure}" if step.on_failure != "fail" else ""
        return f"call {step.model}{parse}{fail}"
    if isinstance(step, RetrieveStep):
        return f"retrieve {step.corpus} (top {step.top_k})"
    return f"tool {step.tool}"


def pipeline_text(name: str, spec: PipelineSpec) -> str:
    """One line per step: its id, what it does, what it waits for, and its condition."""
    fields = ", ".join(f"{k}: {v}" for k, v in spec.input.items())
    lines = [f"pipeline {name}: input {{{fields}}}"]
    for step in spec.steps:
        deps = sorted(spec.deps(step.id))
        after = f" <- {', '.join(deps)}" if deps else f" <- {INPUT}"
        when = f"  when {step.when}" if step.when else ""
        lines.append(f"  {step.id}: {_what(step)}{after}{when}")
    out = "structured (JSON)" if spec.is_structured() else "text"
    lines.append(f"  output: {out}")
    return "\n".join(lines)


def pipeline_mermaid(name: str, spec: PipelineSpec) -> str:
    """A Mermaid flowchart: the input, each step (label: id and kind), the output; a dotted edge when conditional."""
    lines = ["flowchart TD", f'  {INPUT}(["{name}: input"])']
    for step in spec.steps:
        lines.append(f'  {step.id}["{step.id}<br/>{_what(step)}"]')
    for step in spec.steps:
        deps = sorted(spec.deps(step.id)) or [INPUT]
        arrow = "-.->" if step.when else "-->"
        lines += [f"  {dep} {arrow} {step.id}" for dep in deps]
    lines.append('  output(["output"])')
    used = {d for s in spec.steps for d in spec.deps(s.id)}
    lines += [f"  {s.id} --> output" for s in spec.steps if s.id not in used]
    return "\n".join(lines)
