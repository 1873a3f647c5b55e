"""The ``pipelines:`` section of ``ecosystem.yaml``: specialists composed into one answer, checked at load.

A pipeline has an input schema, a list of steps and an output. Step kinds are a closed set (``call``,
``vote``, ``react``, ``retrieve``, ``tool``); nothing in the file names a module or a class. Steps read the input and earlier steps'
outputs through templates (:mod:`cadre.ecosystem.template`) and ``when:`` conditions
(:mod:`cadre.ecosystem.conditions`); those references define the DAG, which must have no cycle. Everything the file
refers to is checked when it loads: steps and their declared fields here, tools against the tool registry, models
against the ecosystem's specialists (:class:`~cadre.ecosystem.spec.EcosystemSpec`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from cadre.config.base import StrictModel
from cadre.ecosystem.conditions import Condition, parse_condition
from cadre.ecosystem.template import Template, check_fields, parse_template
from cadre.ecosystem.tools import TOOLS, Tool
from cadre.paths import safe_name

__all__ = [
    "INPUT",
    "CallStep",
    "PipelineSpec",
    "ReactStep",
    "RetrieveStep",
    "Step",
    "ToolStep",
    "VoteStep",
]

INPUT = "input"
"""The name templates use for the pipeline's input."""

_ID = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
InputType = Literal["string", "number", "integer", "boolean", "object", "array"]


class _StepBase(StrictModel):
    id: str = Field(pattern=_ID, description="the step's name; later steps read its output as {id}")
    when: str | None = Field(default=None, description="run only when this condition holds (else skipped)")
    after: list[str] = Field(default_factory=list, description="steps to wait for beyond those referenced")

    def templates(self) -> dict[str, str]:
        """Each template of the step by its key (``prompt``, ``args.text``)."""
        return {}

    def fields(self) -> frozenset[str] | None:
        """The fields of this step's output that templates may name (None: only the whole output)."""
        return None


class CallStep(_StepBase):
    """Ask a model (a specialist, ``generalist``, or ``auto`` for the router's choice)."""

    kind: Literal["call"]
    model: str = Field(description="a specialist's name, 'generalist', or 'auto'")
    prompt: str = Field(description="the user message, a template")
    system: str | None = Field(default=None, description="a system message (template); default: the model's")
    parse: Literal["text", "json", "label", "number"] = "text"
    json_schema: dict[str, Any] | None = Field(
        default=None, description="for parse: json, the answer's schema"
    )
    labels: list[str] = Field(default_factory=list, description="for parse: label, the allowed answers")
    on_failure: Literal["fail", "retry", "escalate"] = Field(
        default="fail", description="when the answer does not parse: fail, ask again, or ask the generalist"
    )
    retries: int = Field(default=1, ge=0, le=5, description="attempts after the first, for on_failure: retry")
    max_tokens: int = Field(default=128, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)

    def templates(self) -> dict[str, str]:
        return {"prompt": self.prompt, **({"system": self.system} if self.system is not None else {})}

    def fields(self) -> frozenset[str] | None:
        props = (self.json_schema or {}).get("properties")
        return frozenset(props) if self.parse == "json" and isinstance(props, Mapping) else None

    @model_validator(mode="after")
    def _parse_options(self) -> CallStep:
        if self.parse == "label" and not self.labels:
            raise ValueError("parse: label needs labels: [...]")
        if self.labels and self.parse != "label":
            raise ValueError("labels are only for parse: label")
        if self.json_schema is not None and self.parse != "json":
            raise ValueError("json_schema is only for parse: json")
        if self.json_schema is not None and self.json_schema.get("type", "object") != "object":
            raise ValueError("json_schema: a step's JSON answer must be an object (type: object)")
        return self


class VoteStep(CallStep):
    """A call sampled ``k`` times in one batched decode: the majority answer when at least ``threshold`` of the
    samples agree, else the generalist answers (or the step fails). Self-consistency (Wang et al., ICLR 2023) as
    a step, with Med-Gemini's uncertainty-guided escalation (arXiv 2404.18416) when the samples disagree."""

    kind: Literal["vote"]  # type: ignore[assignment]
    k: int = Field(default=5, ge=2, le=16, description="samples, decoded as one batch")
    threshold: float = Field(default=0.6, gt=0.0, le=1.0, description="share of samples that must agree")
    temperature: float = Field(default=0.7, gt=0.0, le=2.0, description="sampling temperature (must be > 0)")
    on_disagreement: Literal["escalate", "fail"] = "escalate"


class RetrieveStep(_StepBase):
    """Passages from a corpus built with ``cadre index add``; its output is ``{passages, citations}``."""

    kind: Literal["retrieve"]
    corpus: str = Field(description="corpus name under $CADRE_HOME (see `cadre index add`)")
    query: str = Field(description="the search text, a template")
    top_k: int = Field(default=4, ge=1, le=32)

    @field_validator("corpus")
    @classmethod
    def _corpus(cls, v: str) -> str:
        return safe_name(v, kind="corpus")

    def templates(self) -> dict[str, str]:
        return {"query": self.query}

    def fields(self) -> frozenset[str] | None:
        return frozenset({"passages", "citations"})


class ToolStep(_StepBase):
    """Call a registered tool (:data:`cadre.ecosystem.tools.TOOLS`) with template arguments."""

    kind: Literal["tool"]
    tool: str = Field(description="a tool name: arithmetic, date, regex_extract, http_get, or a plugin's")
    args: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="strings are templates"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list, description="for a network tool (http_get): the only hosts it may reach"
    )

    def templates(self) -> dict[str, str]:
        """String arguments are templates, except those the tool takes as fixed values (a regex pattern)."""
        fixed = self.resolve_tool().literal if self.tool in TOOLS else ()
        return {f"args.{k}": v for k, v in self.args.items() if isinstance(v, str) and k not in fixed}

    def resolve_tool(self) -> Tool:
        return TOOLS.get(self.tool)

    def fields(self) -> frozenset[str] | None:
        fields = self.resolve_tool().fields if self.tool in TOOLS else ()
        return frozenset(fields) if fields else None


class ReactStep(_StepBase):
    """A bounded loop: the model calls one of ``tools`` or answers, turn by turn (ReAct, Yao et al., ICLR 2023),
    within ``max_turns``, ``max_total_tokens`` and ``timeout_s``. The transcript is in the step's trace."""

    kind: Literal["react"]
    model: str = Field(description="a specialist's name, 'generalist', or 'auto'")
    prompt: str = Field(description="the task, a template")
    tools: list[str] = Field(min_length=1, description="the tools the model may call")
    allowed_hosts: list[str] = Field(default_factory=list, description="for http_get among the tools")
    max_turns: int = Field(default=5, ge=1, le=20)
    max_tokens: int = Field(default=128, ge=1, le=4096, description="per turn")
    max_total_tokens: int = Field(default=2048, ge=1, description="prompt + completion tokens over all turns")
    timeout_s: float = Field(default=60.0, gt=0)

    def templates(self) -> dict[str, str]:
        return {"prompt": self.prompt}


Step = Annotated[CallStep | VoteStep | ReactStep | RetrieveStep | ToolStep, Field(discriminator="kind")]


def _text_input() -> dict[str, InputType]:
    return {"text": "string"}


class PipelineSpec(StrictModel):
    """One pipeline: its input, its steps (a DAG through their references), and its output."""

    description: str = ""
    input: dict[str, InputType] = Field(
        default_factory=_text_input, description="the input's fields and their JSON types"
    )
    steps: list[Step] = Field(min_length=1)
    output: str | dict[str, str] | None = Field(
        default=None,
        description="a template, or a mapping of templates (a JSON answer); default: the last step",
    )
    _templates: dict[str, dict[str, Template]] = PrivateAttr(default_factory=dict)
    _conditions: dict[str, Condition] = PrivateAttr(default_factory=dict)
    _deps: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _reads: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)
    _output: dict[str, Template] | Template | None = PrivateAttr(None)

    @field_validator("input")
    @classmethod
    def _input(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(_ID, key):
                raise ValueError(f"input field {key!r}: use letters, digits and '_' (starting with a letter)")
        return v

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        ids = [s.id for s in self.steps]
        for i, step in enumerate(self.steps):
            if step.id == INPUT:
                raise ValueError(f"steps.{i}.id: {INPUT!r} names the pipeline's input; pick another id")
            if ids.index(step.id) != i:
                raise ValueError(f"steps.{i}.id: {step.id!r} is used twice")
        declared: dict[str, frozenset[str] | None] = {INPUT: frozenset(self.input)}
        for i, step in enumerate(self.steps):
            if isinstance(step, ToolStep):
                self._check_tool(i, step)
            if isinstance(step, ReactStep):
                self._check_react_tools(i, step)
            declared[step.id] = step.fields()
        for i, step in enumerate(self.steps):
            refs = []
            parsed: dict[str, Template] = {}
            for key, text in step.templates().items():
                parsed[key] = _parse(f"steps.{i}.{key}", text, declared)
                refs += parsed[key].refs
            self._reads[step.id] = frozenset(r.name for r in refs if r.name != INPUT)
            if step.when is not None:
                cond = _wrap(f"steps.{i}.when", lambda s=step: parse_condition(s.when or ""))
                _wrap(f"steps.{i}.when", lambda c=cond: check_fields(c.refs, declared))
                self._conditions[step.id] = cond
                refs += list(cond.refs)
            for name in step.after:
                if name not in ids:
                    raise ValueError(f"steps.{i}.after: no step {name!r} (steps: {', '.join(ids)})")
            if step.id in {r.name for r in refs} | set(step.after):
                raise ValueError(f"steps.{i}: step {step.id!r} refers to itself")
            self._templates[step.id] = parsed
            self._deps[step.id] = frozenset({r.name for r in refs if r.name != INPUT} | set(step.after))
        self._check_cycles()
        if isinstance(self.output, str):
            self._output = _parse("output", self.output, declared)
        elif isinstance(self.output, dict):
            self._output = {k: _parse(f"output.{k}", v, declared) for k, v in self.output.items()}
        return self

    def _check_tool(self, i: int, step: ToolStep) -> None:
        if step.tool not in TOOLS:
            names = ", ".join(TOOLS.names())
            raise ValueError(f"steps.{i}.tool: no tool {step.tool!r} (tools: {names}; plugins add more)")
        tool = step.resolve_tool()
        _wrap(f"steps.{i}.args", lambda: tool.check_args(step.args))
        if tool.network and not step.allowed_hosts:
            raise ValueError(
                f"steps.{i}: tool {step.tool!r} reaches the network and is off by default; list the hosts it may "
                "reach in allowed_hosts: [...]"
            )
        if "pattern" in tool.literal and isinstance(step.args.get("pattern"), str):
            try:
                re.compile(str(step.args["pattern"]))
            except re.error as err:
                raise ValueError(f"steps.{i}.args.pattern: not a regular expression: {err}") from None

    def _check_react_tools(self, i: int, step: ReactStep) -> None:
        for name in step.tools:
            if name not in TOOLS:
                raise ValueError(f"steps.{i}.tools: no tool {name!r} (tools: {', '.join(TOOLS.names())})")
            tool = TOOLS.get(name)
            fixed = [a for a in tool.required if a in tool.literal]
            if fixed:
                raise ValueError(
                    f"steps.{i}.tools: {name!r} needs a fixed {fixed[0]!r} that only the file may give (a model "
                    "may not write it); use a tool step instead"
                )
            if tool.network and not step.allowed_hosts:
                raise ValueError(
                    f"steps.{i}: tool {name!r} reaches the network and is off by default; list the hosts it may "
                    "reach in allowed_hosts: [...]"
                )

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = [*path[path.index(node) :], node]
                raise ValueError(
                    f"steps form a cycle: {' -> '.join(cycle)}; a step may only read earlier ones"
                )
            state[node] = 1
            for dep in sorted(self._deps[node]):
                visit(dep, [*path, node])
            state[node] = 2

        for step in self.steps:
            visit(step.id, [])

    # --- what the executor reads ------------------------------------------------------------------------------

    def step(self, step_id: str) -> CallStep | VoteStep | ReactStep | RetrieveStep | ToolStep:
        return next(s for s in self.steps if s.id == step_id)

    def deps(self, step_id: str) -> frozenset[str]:
        """The steps ``step_id`` waits for (its references and ``after``)."""
        return self._deps[step_id]

    def reads(self, step_id: str) -> frozenset[str]:
        """The steps whose outputs ``step_id``'s templates read (a step reading a skipped one is skipped too; its
        condition may read a skipped step, which is null there)."""
        return self._reads[step_id]

    def template(self, step_id: str, key: str) -> Template:
        return self._templates[step_id][key]

    def condition(self, step_id: str) -> Condition | None:
        return self._conditions.get(step_id)

    def render_output(self, values: Mapping[str, Any]) -> Any:
        """The pipeline's answer: its ``output`` rendered, or the last step's output."""
        if self._output is None:
            return values.get(self.steps[-1].id)
        if isinstance(self._output, Template):
            return self._output.value(values)
        return {k: t.value(values) for k, t in self._output.items()}

    def model_steps(self) -> Iterator[tuple[int, CallStep | ReactStep]]:
        """The steps that call a model (call, vote, react), with their index."""
        for i, s in enumerate(self.steps):
            if isinstance(s, CallStep | ReactStep):
                yield i, s

    def is_structured(self) -> bool:
        """Whether the answer is JSON (a mapping output, or a JSON last step) rather than text."""
        if isinstance(self.output, dict):
            return True
        last = self.steps[-1]
        return self.output is None and (
            (isinstance(last, CallStep) and last.parse == "json")
            or not isinstance(last, CallStep | ReactStep)
        )


def _wrap(path: str, fn: Any) -> Any:
    try:
        return fn()
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _parse(path: str, text: str, declared: Mapping[str, frozenset[str] | None]) -> Template:
    template: Template = _wrap(path, lambda: parse_template(text))
    _wrap(path, lambda: check_fields(template.refs, declared))
    return template
