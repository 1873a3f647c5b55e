"""Per-specialist engine options: prompt lookup, serving from a merged GGUF, and the adapter tax they report.

Fast: the spec's rules and the merge decision. Slow: a real server over the bundled SmolLM2 with one merged and
one unmerged specialist, read back through its startup log, /metrics and the openai client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from cadre.errors import ConfigError
from cadre.runtime.bundled import bundled_model_path
from cadre.serve import parse_ecosystem
from cadre.serve.merging import lookup_option, merge_plan

from .conftest import LiveServer


def _spec(specialists: list[dict[str, Any]], **extra: Any) -> Any:
    return parse_ecosystem(
        {"specialists": specialists, "server": {"fallback": "error"}, **extra}, source="test", base_dir="/tmp"
    )


@pytest.mark.parametrize(
    ("specialist", "extra", "problem"),
    [
        (
            {"name": "a", "base": "openai:m@http://127.0.0.1:9/v1", "prompt_lookup": "on"},
            {},
            "local llama.cpp",
        ),
        ({"name": "a", "merge": "always"}, {}, "needs a local base and an adapter"),
        ({"name": "a", "merge": "sometimes"}, {}, "merge"),
        (
            {"name": "a"},
            {"models": {"gemma3-270m": {"prompt_lookup": "off"}}},
            "models.gemma3-270m: no specialist",
        ),
        ({"name": "a"}, {"models": {"smollm2-135m": {"prompt_lookup": "yes"}}}, "prompt_lookup"),
    ],
)
def test_engine_options_are_checked_with_their_key(
    specialist: dict[str, Any], extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        _spec([specialist], **extra)


def test_prompt_lookup_inherits_from_the_model_then_the_runtime() -> None:
    spec = _spec(
        [{"name": "a"}, {"name": "b", "prompt_lookup": "off"}],
        models={"smollm2-135m": {"prompt_lookup": "on"}},
    )
    a, b = spec.specialists
    assert lookup_option(spec, a, a.base) is True  # inherit → the model's "on"
    assert lookup_option(spec, b, b.base) is False  # the specialist's own setting wins
    assert (
        lookup_option(_spec([{"name": "a"}]), a, a.base) is None
    )  # inherit all the way: the runtime default


def test_merge_plan_merges_only_a_lone_gguf_specialist(tmp_path: Path) -> None:
    adapter = tmp_path / "a.gguf"
    adapter.write_bytes(b"GGUF")  # merge_plan looks at the kind of path only; merged_model reads it
    alone = _spec([{"name": "a", "adapter": str(adapter)}])
    assert merge_plan(alone, alone.specialists[0], adapter) == (
        True,
        "the only user of its base (merge: auto)",
    )
    shared = _spec([{"name": "a", "adapter": str(adapter)}, {"name": "b"}])
    merge, why = merge_plan(shared, shared.specialists[0], adapter)
    assert not merge and "shared" in why
    forced = _spec([{"name": "a", "adapter": str(adapter), "merge": "always"}, {"name": "b"}])
    assert merge_plan(forced, forced.specialists[0], adapter) == (True, "merge: always")
    never = _spec([{"name": "a", "adapter": str(adapter), "merge": "never"}])
    assert merge_plan(never, never.specialists[0], adapter) == (False, "merge: never")
    merge, why = merge_plan(alone, alone.specialists[0], tmp_path)  # a PEFT folder
    assert not merge and "gguf-adapter" in why


def test_check_says_which_specialists_will_be_merged(tmp_path: Path) -> None:
    from cadre.serve import check_ecosystem

    (tmp_path / "e.yaml").write_text(
        "specialists:\n"
        "  - {name: a, adapter: a.gguf}\n"
        "  - {name: b, adapter: b.gguf, base: gemma3-270m}\n"
        "  - {name: c, adapter: c.gguf}\n"
        "  - {name: d, adapter: d.gguf, base: gemma3-270m, merge: never}\n"
        "server: {fallback: error}\n"
    )
    notes = {m["name"]: m["notes"][-1] for m in check_ecosystem(tmp_path / "e.yaml")["models"]}
    assert notes == {
        "a": "merge: auto (adapter unmerged)",  # a and c share smollm2-135m
        "b": "merge: auto (adapter unmerged)",  # b and d share gemma3-270m
        "c": "merge: auto (adapter unmerged)",
        "d": "merge: never (adapter unmerged)",
    }
    (tmp_path / "e.yaml").write_text(
        "specialists:\n  - {name: a, adapter: a.gguf}\n  - {name: b, base: gemma3-270m, adapter: b.gguf}\n"
        "server: {fallback: error}\n"
    )
    notes = {m["name"]: m["notes"][-1] for m in check_ecosystem(tmp_path / "e.yaml")["models"]}
    assert notes == {"a": "merge: auto (served merged)", "b": "merge: auto (served merged)"}


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
def test_a_merged_and_an_unmerged_specialist_report_their_tax(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from runtime.lora_files import write_random_lora  # tests/runtime helper (random GGUF LoRA for SmolLM2)

    monkeypatch.setenv("CADRE_HOME", str(tmp_path / "home"))
    base = bundled_model_path("smollm2-135m")
    write_random_lora(base, tmp_path / "dates.gguf", targets=("attn_q", "attn_v"), seed=1, scale=0.03)
    write_random_lora(base, tmp_path / "support.gguf", seed=2, scale=0.03)  # r8 on all 7 projections
    spec = parse_ecosystem(
        {
            "specialists": [
                {"name": "dates", "adapter": "dates.gguf", "merge": "always", "decoding": {"max_tokens": 8}},
                {
                    "name": "support",
                    "adapter": "support.gguf",
                    "prompt_lookup": "off",
                    "decoding": {"max_tokens": 8},
                },
            ],
            "models": {"smollm2-135m": {"prompt_lookup": "on"}},
            "server": {"fallback": "error"},
        },
        source="test",
        base_dir=tmp_path,
    )
    with caplog.at_level(logging.INFO, logger="cadre.serve"), LiveServer(spec) as live:
        merged_files = list((tmp_path / "home" / "merged").glob("*.gguf"))
        assert len(merged_files) == 1  # written once, under $CADRE_HOME, named by content hash
        served = live.gateway.served
        dates, support = served.snapshot.targets["dates"], served.snapshot.targets["support"]
        assert served.worker(dates).backend.path == merged_files[0]
        assert dates.adapter is None and support.adapter == "support"
        assert served.worker(support).backend._adapters["support"].lookup is None  # per-specialist "off"
        assert served.worker(support).backend.prompt_lookup is not None  # the model's "on"
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x")
        for model in ("dates", "support"):
            r = client.completions.create(model=model, prompt="1, 2, 3, 4, 5, 6,", max_tokens=8)
            assert r.model == model and r.usage is not None and r.usage.completion_tokens >= 1
        metrics = httpx.get(f"{live.url}/metrics").text
    log = caplog.text
    assert "specialist 'dates': merged into its base (merge: always): no adapter tax" in log
    assert "specialist 'support': unmerged adapter r8 on all 7 projections (30 layers)" in log
    assert "adapter tax 1.13x; prompt lookup off" in log
    assert _metric(metrics, "cadre_adapter_tax", specialist="dates", merged="true") == 1.0
    assert _metric(metrics, "cadre_adapter_tax", specialist="support", merged="false") == 1.13
    for model in ("smollm2-135m", "smollm2-135m+dates"):
        assert _metric(metrics, "cadre_prompt_lookup_tokens_total", model=model, kind="drafted") is not None
        assert _metric(metrics, "cadre_prompt_lookup_drafts_total", model=model) is not None
        assert (_metric(metrics, "cadre_prompt_tokens_total", model=model, kind="computed") or 0) > 0
        assert _metric(metrics, "cadre_prompt_tokens_total", model=model, kind="reused") is not None
