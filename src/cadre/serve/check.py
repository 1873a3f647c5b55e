"""``cadre check``: validate an ecosystem and report what would be served, loading no model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cadre.ecosystem.spec import EcosystemSpec, load_ecosystem
from cadre.runtime.registry import parse_model

__all__ = ["check_ecosystem"]


def _adapter_state(spec: EcosystemSpec, base: str, adapter: str | None) -> tuple[str, list[str]]:
    if adapter is None:
        return "-", ["no adapter: the bare base answers with the system prompt"]
    if parse_model(base).is_remote:
        return f"{adapter} (remote)", []
    path = spec.resolve(adapter)
    if not path.exists():
        return str(adapter), [f"adapter {path} does not exist yet: the bare base answers until it is trained"]
    return str(adapter), []


def check_ecosystem(path: str | Path) -> dict[str, Any]:
    """Validate ``path`` (raises ConfigError/NotFoundError listing every problem) and describe it.

    Checks beyond the schema, as warnings: adapters not trained yet, a router folder that is missing, an API
    key variable that is unset, specialists the router cannot reach (no examples).
    """
    spec = load_ecosystem(path)
    models: list[dict[str, Any]] = []
    warnings: list[str] = []
    for s in spec.specialists:
        adapter, notes = _adapter_state(spec, s.base, s.adapter)
        if s.knowledge is not None:
            notes.append(f"grounded in corpus {s.knowledge.corpus!r} (top {s.knowledge.top_k})")
        if s.adapter is not None and not parse_model(s.base).is_remote:
            alone = s.merge == "always" or (s.merge == "auto" and not spec.shares_base(s))
            merged = alone and not spec.resolve(s.adapter).is_dir()  # only GGUF adapters are merged
            notes.append(f"merge: {s.merge} ({'served merged' if merged else 'adapter unmerged'})")
        models.append(
            {
                "name": s.name,
                "kind": "specialist",
                "base": s.base,
                "adapter": adapter,
                "examples": len(s.examples),
                "notes": notes,
            }
        )
    if spec.generalist is not None:
        g = spec.generalist
        notes = []
        if g.api_key_env and not os.environ.get(g.api_key_env):
            warnings.append(f"generalist: environment variable {g.api_key_env} is not set (its API key)")
        models.append(
            {
                "name": "generalist",
                "kind": "generalist",
                "base": g.model,
                "adapter": "-",
                "examples": 0,
                "notes": notes,
            }
        )
    if spec.router.path:
        router_dir = spec.resolve(spec.router.path)
        router = f"load {router_dir}"
        if not router_dir.exists():
            warnings.append(f"router.path {router_dir} does not exist: fit one with `cadre route fit`")
    else:
        with_examples = [s.name for s in spec.specialists if s.examples]
        router = (
            f"fit at start-up from {sum(len(s.examples) for s in spec.specialists)} examples "
            f"({', '.join(with_examples)}) + {len(spec.router.out_of_scope)} out-of-scope"
            if with_examples
            else "none (model='auto' is unavailable: give the specialists examples)"
        )
        if with_examples:
            missing = [s.name for s in spec.specialists if not s.examples]
            if missing:
                warnings.append(
                    f"specialists without examples are reachable by name only: {', '.join(missing)}"
                )
    pipelines = _pipelines(spec, warnings)
    return {
        "path": str(path),
        "valid": True,
        "models": models,
        "router": router,
        "pipelines": pipelines,
        "warnings": warnings,
    }


def _pipelines(spec: EcosystemSpec, warnings: list[str]) -> list[dict[str, Any]]:
    """Each pipeline (validated with the file: steps, models, tools, fields, no cycles) and its DAG as text;
    a corpus a retrieve step names that does not exist yet is a warning (``cadre index add`` builds it)."""
    from cadre.ecosystem import RetrieveStep, pipeline_text

    out = []
    corpora: set[str] | None = None
    for name, p in spec.pipelines.items():
        for step in p.steps:
            if isinstance(step, RetrieveStep):
                if corpora is None:
                    from cadre.knowledge import list_corpora

                    corpora = {c.name for c in list_corpora()}
                if step.corpus not in corpora:
                    warnings.append(
                        f"pipeline {name}: step {step.id} reads corpus {step.corpus!r}, which does not exist "
                        f"yet: build it with `cadre index add {step.corpus} ...`"
                    )
        out.append({"name": name, "steps": len(p.steps), "dag": pipeline_text(name, p)})
    return out
