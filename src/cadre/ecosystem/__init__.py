"""cadre.ecosystem: what a cadre is (the ``ecosystem.yaml`` schema) and what runs on it without a server: pipelines.

It sits below both ``serve`` and ``evaluate`` so that a pipeline declared in the file runs the same way behind
``cadre serve``, under ``cadre eval`` and from ``cadre pipeline run``. The executor calls models through the small
:class:`ModelCaller` protocol: the server implements it with its served models, the CLI and the evaluator with
:class:`LocalModels`.

    from cadre.ecosystem import LocalModels, PipelineRunner, load_ecosystem
    spec = load_ecosystem("ecosystem.yaml")
    runner = PipelineRunner(spec.pipelines, LocalModels(spec))
    result = runner.run("support", {"text": "..."})

Importing this package loads pydantic and the spec, no model.
"""

from __future__ import annotations

from cadre.ecosystem.conditions import Condition, parse_condition
from cadre.ecosystem.executor import PipelineResult, PipelineRunner, StepTrace
from cadre.ecosystem.graph import pipeline_mermaid, pipeline_text
from cadre.ecosystem.local import describe_pipeline, parse_input, run_local
from cadre.ecosystem.models import GENERALIST, LocalModels, ModelCaller, ModelReply, ModelRequest, constrain
from cadre.ecosystem.pipeline_spec import CallStep, PipelineSpec, RetrieveStep, ToolStep
from cadre.ecosystem.routing import build_router
from cadre.ecosystem.spec import (
    AUTO_MODEL,
    DecodingDefaults,
    EcosystemSpec,
    GeneralistSpec,
    KnowledgeRef,
    ModelOptions,
    RoutingSpec,
    ServerSpec,
    SpecialistSpec,
    check_adapter_path,
    check_admin_specialist,
    load_ecosystem,
    parse_ecosystem,
)
from cadre.ecosystem.template import Template, parse_template
from cadre.ecosystem.tools import TOOLS, Tool

__all__ = [
    "AUTO_MODEL",
    "GENERALIST",
    "TOOLS",
    "CallStep",
    "Condition",
    "DecodingDefaults",
    "EcosystemSpec",
    "GeneralistSpec",
    "KnowledgeRef",
    "LocalModels",
    "ModelCaller",
    "ModelOptions",
    "ModelReply",
    "ModelRequest",
    "PipelineResult",
    "PipelineRunner",
    "PipelineSpec",
    "RetrieveStep",
    "RoutingSpec",
    "ServerSpec",
    "SpecialistSpec",
    "StepTrace",
    "Template",
    "Tool",
    "ToolStep",
    "build_router",
    "check_adapter_path",
    "check_admin_specialist",
    "constrain",
    "describe_pipeline",
    "load_ecosystem",
    "parse_condition",
    "parse_ecosystem",
    "parse_input",
    "parse_template",
    "pipeline_mermaid",
    "pipeline_text",
    "run_local",
]
