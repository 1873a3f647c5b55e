"""TrainConfig: defaults, validation, budgets, YAML equivalence with the CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.cli.train import FLAG_FIELDS, build_config
from cadre.config.base import load_spec
from cadre.errors import ConfigError
from cadre.train import TrainConfig, parse_budget


@pytest.mark.parametrize(
    ("text", "seconds", "tokens"),
    [
        ("10m", 600, None),
        ("90s", 90, None),
        ("1h30m", 5400, None),
        ("2.5min", 150, None),
        ("200k tokens", None, 200_000),
        ("1.5M tok", None, 1_500_000),
        ("5000 tokens", None, 5000),
    ],
)
def test_parse_budget(text: str, seconds: float | None, tokens: int | None) -> None:
    b = parse_budget(text)
    assert (b.seconds, b.tokens) == (seconds, tokens)


@pytest.mark.parametrize("text", ["", "ten minutes", "10", "0s", "-5m", "3 parsecs"])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(text)


def test_defaults_need_only_data_and_out(tmp_path: Path) -> None:
    c = TrainConfig(data=tmp_path / "d.jsonl", out=tmp_path / "o")
    assert c.base == "smollm2-135m" and c.lora.rank == 16 and c.lora.alpha == 32
    assert c.lora.target_modules == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    assert (c.micro_batch, c.accumulation) == (8, 1)


def test_invalid_combinations(tmp_path: Path) -> None:
    base = {"data": str(tmp_path / "d.jsonl"), "out": str(tmp_path / "o")}
    for extra, msg in [
        ({"template": "{text}"}, "needs `target`"),
        ({"batch_size": 8, "micro_batch_size": 3}, "multiple of"),
        ({"qlora": True, "device": "cpu"}, "needs CUDA"),
        ({"budget": "soon"}, "not understood"),
        ({"lora": {"rank": 8, "alpah": 3}}, "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            _parse({**base, **extra})


def _parse(data: dict) -> TrainConfig:
    from cadre.config.base import parse_spec

    return parse_spec(TrainConfig, data, source="test")


def test_yaml_and_flags_set_the_same_fields(tmp_path: Path) -> None:
    yml = tmp_path / "train.yaml"
    yml.write_text(
        f"data: {tmp_path / 'd.jsonl'}\nout: {tmp_path / 'o'}\nlora:\n  rank: 4\nbudget: 2m\nlearning_rate: 0.001\n",
        encoding="utf-8",
    )
    from_yaml = load_spec(TrainConfig, yml)
    overlaid = build_config(yml, {"rank": 8, "target_modules": "q_proj, v_proj", "lr": None})
    assert from_yaml.lora.rank == 4 and overlaid.lora.rank == 8
    assert overlaid.lora.target_modules == ["q_proj", "v_proj"]
    assert overlaid.learning_rate == 0.001 and overlaid.budget == "2m"
    with pytest.raises(ConfigError, match="--data is required"):
        build_config(None, {"out": str(tmp_path)})


def test_every_flag_maps_to_a_config_field() -> None:
    fields = TrainConfig.model_fields
    for flag, path in FLAG_FIELDS.items():
        head, _, rest = path.partition(".")
        assert head in fields, flag
        if rest:
            assert rest in fields[head].annotation.model_fields, flag  # type: ignore[union-attr]
