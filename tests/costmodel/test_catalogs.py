"""The hardware and model catalogs: every entry loads, and derived sizes match published figures."""

from __future__ import annotations

import json

import pytest

from cadre.costmodel import (
    hardware_names,
    kv_bytes,
    kv_bytes_per_token,
    load_hardware,
    load_model,
    model_names,
)
from cadre.errors import ConfigError, NotFoundError

REQUIRED_HW = ["h100-sxm", "h200", "a100-80gb", "l4", "l40s", "rtx-4090", "mi300x", "m2-ultra", "local"]
REQUIRED_MODELS = [
    "llama-3-8b",
    "llama-3-70b",
    "mistral-7b",
    "mixtral-8x7b",
    "deepseek-v3",
    "qwen2.5-0.5b",
    "qwen2.5-7b",
    "phi-3-mini",
    "smollm2-135m",
    "gemma-3-270m",
    "gpt4-est",
]


def test_required_entries_exist() -> None:
    assert set(REQUIRED_HW) <= set(hardware_names())
    assert set(REQUIRED_MODELS) <= set(model_names())


@pytest.mark.parametrize("name", hardware_names())
def test_every_hardware_entry_is_valid(name: str) -> None:
    hw = load_hardware(name)
    assert hw.memory_bytes > 0 and hw.memory_bandwidth_bytes_per_s > 0 and hw.tdp_watts > 0
    assert hw.flops("bf16") > 0
    for pf in hw.peak_flops.values():
        assert pf.sparse is None or pf.sparse > pf.dense


def test_h100_spec_and_measured_are_separate() -> None:
    hw = load_hardware("h100-sxm")
    assert hw.memory_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert hw.bandwidth(measured=True) == pytest.approx(2.82e12)
    assert hw.peak_flops["fp8"].dense == pytest.approx(1978.9e12)
    assert hw.peak_flops["fp8"].sparse == pytest.approx(3957.8e12)
    assert hw.ridge_point("bf16") == pytest.approx(295, rel=0.01)
    assert hw.price_per_hour == 3.0
    assert load_hardware("h100-sxm", price_per_hour=2.0).price_per_hour == 2.0


# (total params B, active params B, KV bytes/token FP16) from shared/notes/cost-model.md §6
PUBLISHED = {
    "llama-3-8b": (8.03, 8.03, 131_072),
    "llama-3-70b": (70.55, 70.55, 327_680),
    "mistral-7b": (7.24, 7.24, 131_072),
    "mixtral-8x7b": (46.70, 12.88, 131_072),
    "deepseek-v3": (671.0, 37.6, 70_272),
    "qwen2.5-0.5b": (0.494, 0.494, 12_288),
    "qwen2.5-7b": (7.62, 7.62, 57_344),
    "phi-3-mini": (3.82, 3.82, 393_216),
    "smollm2-135m": (0.135, 0.135, 23_040),
    "gemma-3-270m": (0.268, 0.268, 18_432),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_and_kv_match_published(name: str) -> None:
    total, active, kv = PUBLISHED[name]
    m = load_model(name)
    assert m.total_params() / 1e9 == pytest.approx(total, rel=0.01)
    assert m.active_params() / 1e9 == pytest.approx(active, rel=0.015)
    assert kv_bytes_per_token(m) == kv


def test_attention_kinds_and_sliding_windows() -> None:
    assert load_model("phi-3-mini").attention_kind == "MHA"
    assert load_model("llama-3-8b").attention_kind == "GQA"
    assert load_model("gemma-3-270m").attention_kind == "MQA"
    assert load_model("deepseek-v3").attention_kind == "MLA"
    g = load_model("gemma-3-270m")
    per_layer = 18_432 / 18
    # 3 global layers keep all 32k tokens, 15 sliding layers keep 512
    assert kv_bytes(g, 32_768) == pytest.approx(per_layer * (3 * 32_768 + 15 * 512))
    assert kv_bytes(g, 100) == pytest.approx(18_432 * 100)


def test_gpt4_estimate_is_the_papers_assumption() -> None:
    m = load_model("gpt4-est")
    assert m.active_params() == 220e9 and m.num_layers == 120 and m.hidden_size == 16384
    assert kv_bytes_per_token(m) == 4 * 120 * 16384


def test_unknown_names_list_close_matches() -> None:
    with pytest.raises(NotFoundError, match="h100-sxm"):
        load_hardware("h100")
    with pytest.raises(NotFoundError, match="llama-3-8b"):
        load_model("llama-3-8x")


def test_user_config_json_and_unknown_keys(tmp_path) -> None:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "rope_theta": 10000.0,
        "torch_dtype": "bfloat16",
    }
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    m = load_model(p)
    assert m.head_dim == 64 and m.num_kv_heads == 2 and m.name == tmp_path.name
    assert load_model(tmp_path).total_params() == m.total_params()
    p.write_text(json.dumps({**cfg, "num_hiden_layers": 3}))
    with pytest.raises(ConfigError, match="num_hiden_layers") as err:
        load_model(p)
    assert "\n" not in str(err.value)
    p.write_text(json.dumps({**cfg, "num_key_value_heads": 3}))
    with pytest.raises(ConfigError, match="num_key_value_heads"):
        load_model(p)
    del cfg["hidden_size"]
    p.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="hidden_size"):
        load_model(p)


def test_hardware_file_with_unknown_key_names_it(tmp_path) -> None:
    import yaml

    data = load_hardware("l4").model_dump(exclude_none=True)
    data["memroy_bytes"] = 1
    p = tmp_path / "mygpu.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="memroy_bytes"):
        load_hardware(str(p))
    data.pop("memroy_bytes")
    data["memory_bytes"] = -5
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="memory_bytes"):
        load_hardware(str(p))
    with pytest.raises(ConfigError, match="price_per_hour"):
        load_hardware("l4", price_per_hour=-1)
