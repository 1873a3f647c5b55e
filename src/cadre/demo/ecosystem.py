"""Writing the demo's ``ecosystem.yaml``: the trained specialists, the fitted router and the generalist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cadre.demo.composed import PIPELINE, support_pipeline
from cadre.demo.config import DemoConfig
from cadre.demo.evaluation import generation_settings
from cadre.synth import generate, get_generator

__all__ = ["write_ecosystem"]

_HEADER = """\
# Written by `cadre demo`: three specialists (LoRA adapters over SmolLM2-135M), the router fitted on their
# training examples plus out-of-scope requests, and a local generalist for everything else.
# Serve it with:  cadre serve {path} --port 8000     (validate with: cadre check {path})
"""


def write_ecosystem(out: Path, cfg: DemoConfig, *, trained: list[str], generalist: str, routed: bool) -> Path:
    """Write ``out/ecosystem.yaml`` (paths relative to ``out``) and validate it with the serve layer's spec."""
    specialists: list[dict[str, Any]] = []
    for task in cfg.tasks:
        gen = get_generator(task)
        settings = generation_settings(task)
        spec: dict[str, Any] = {
            "name": task,
            "base": cfg.base,
            "description": gen.description,
            "system_prompt": gen.system_prompt,
            "decoding": {"max_tokens": settings["max_tokens"], "temperature": 0.0, "stop": settings["stop"]},
            "examples": [r["text"] for r in generate(gen, split="train", n=12, seed=cfg.seed)],
        }
        if task in trained:
            spec["adapter"] = f"specialists/{task}.gguf"
        specialists.append(spec)
    router: dict[str, Any] = {
        "out_of_scope": [r["text"] for r in generate(get_generator("out_of_scope"), split="train", n=12)]
    }
    if routed:
        router["path"] = "router"
    data = {
        "specialists": specialists,
        "router": router,
        "generalist": {
            "model": generalist,
            "description": "the local generalist: the largest bundled model",
            "decoding": {"max_tokens": 128, "temperature": 0.0},
        },
    }
    if {"intents", "invoices", "normalize"} <= set(cfg.tasks):
        data["pipelines"] = {PIPELINE: support_pipeline()}  # the composed task's (demo/composed.py)
    path = out / "ecosystem.yaml"
    text = _HEADER.format(path=path) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    try:
        from cadre.serve import parse_ecosystem

        parse_ecosystem(yaml.safe_load(text), source=str(path), base_dir=out)
    except ImportError:  # the serve layer's spec is not in this build; the file is still written
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
