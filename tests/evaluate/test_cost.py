"""Cost per request: measured time x hardware price (local) or tokens x list prices (hosted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import ConfigError
from cadre.evaluate.cost import Price, api_cost, load_prices, summarize_cost
from cadre.evaluate.systems import SystemSpec, parse_system


def _recs(*pairs: tuple[float, int, int]) -> list[dict]:
    return [{"latency_s": s, "prompt_tokens": p, "completion_tokens": c, "error": None} for s, p, c in pairs]


def test_hosted_cost_from_the_price_table() -> None:
    prices = load_prices()
    assert prices.models["gpt-4o-mini"].input == 0.15
    # 1,000 prompt tokens at $0.15/M + 200 completion tokens at $0.60/M = $0.00015 + $0.00012
    assert api_cost(1000, 200, prices.models["gpt-4o-mini"]) == pytest.approx(0.00027)
    spec = parse_system("gpt=openai:gpt-4o-mini@https://api.openai.com/v1")
    cs = summarize_cost(spec, _recs((1.0, 1000, 200), (2.0, 3000, 0)), prices)
    assert cs.method == "price:gpt-4o-mini"
    assert cs.per_request == pytest.approx((0.00027 + 0.00045) / 2)
    assert cs.per_1000 == pytest.approx(cs.per_request * 1000)  # type: ignore[operator]


def test_local_cost_from_the_cost_model() -> None:
    spec = parse_system("base=smollm2-135m,hardware=l4")  # $0.70 per hour in the hardware catalog
    cs = summarize_cost(spec, _recs((3.6, 10, 5), (7.2, 10, 5)), load_prices())
    assert cs.method == "hardware:l4" and cs.per_request == pytest.approx(0.7 * 5.4 / 3600)
    own = parse_system("base=smollm2-135m,price_per_hour=0.36")
    assert summarize_cost(own, _recs((10.0, 1, 1)), load_prices()).per_request == pytest.approx(0.001)


def test_unknown_prices_are_reported_not_invented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from cadre.costmodel.hardware import load_hardware

    free = tmp_path / "free.yaml"  # hardware with no price per hour: the cost is unknown, not $0
    free.write_text(yaml.safe_dump({**load_hardware("l4").model_dump(mode="json"), "price_per_hour": 0.0}))
    local = summarize_cost(
        parse_system(f"base=smollm2-135m,hardware={free}"), _recs((1.0, 1, 1)), load_prices()
    )
    assert local.per_request is None and "cadre cost calibrate" in local.note
    remote = summarize_cost(
        parse_system("x=openai:mystery@https://example.com/v1"), _recs((1.0, 1, 1)), load_prices()
    )
    assert remote.per_request is None and "no price for 'mystery'" in remote.note
    monkeypatch.setenv("CADRE_HOME", str(tmp_path))  # no calibration file: the catalog's default for `local`
    served = summarize_cost(
        parse_system("x=openai:mystery@http://127.0.0.1:8000/v1,price_per_hour=3.6"),
        _recs((1.0, 1, 1)),
        load_prices(),
    )
    assert served.method == "hardware:local" and served.per_request == pytest.approx(0.001)
    assert summarize_cost(parse_system("base=smollm2-135m"), [], load_prices()).note == "no answered requests"


def test_custom_price_table(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text("models:\n  my-llm: {input: 1.0, output: 2.0}\n", encoding="utf-8")
    prices = load_prices(table)
    spec = SystemSpec(name="m", kind="openai", model="openai:whatever@https://x.example/v1", price="my-llm")
    assert summarize_cost(spec, _recs((1.0, 1_000_000, 500_000)), prices).per_request == pytest.approx(2.0)
    table.write_text("models:\n  bad: {input: 1.0}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.bad\.output"):
        load_prices(table)
    assert Price(input=0, output=0).as_of == ""


def test_local_cost_from_throughput_and_routed_cost_from_its_targets() -> None:
    from cadre.evaluate.cost import busy_time

    prices = load_prices()
    spec = parse_system("spec=smollm2-135m,price_per_hour=3.6")  # $0.001 per second of the machine
    # two passes: 10 requests in 2 s at 8 in flight, then 6 in 1.2 s (a resumed run): 0.2 s per request
    busy = busy_time(
        [
            {"system": "spec", "wall_s": 2.0, "requests": 10, "concurrency": 8},
            {"system": "spec", "wall_s": 1.2, "requests": 6, "concurrency": 8},
            {"system": "other", "wall_s": 1.0, "requests": 1, "concurrency": 1},
        ]
    )
    assert busy["spec"].seconds_per_request == pytest.approx(0.2) and busy["spec"].concurrency == 8
    # each request's latency (1.5 s, waiting in a batch) is not what it cost: the machine served 5 per second
    cs = summarize_cost(spec, _recs((1.5, 10, 5), (1.5, 10, 5)), prices, busy=busy)
    assert cs.per_request == pytest.approx(0.0002) and cs.seconds_per_request == pytest.approx(0.2)
    assert cs.concurrency == 8
    # without throughput: latency / concurrency per request (older runs)
    old = summarize_cost(spec, [{**r, "concurrency": 3} for r in _recs((1.5, 10, 5))], prices)
    assert old.per_request == pytest.approx(0.0005) and old.seconds_per_request is None
    mixed = busy_time([{"system": "s", "wall_s": 1, "requests": 1, "concurrency": c} for c in (1, 8)])
    assert (
        mixed["s"].concurrency is None
        and busy_time([{"system": "s", "wall_s": 1}])["s"].seconds_per_request is None
    )

    # a routed request costs what its target's requests cost here, plus the router's time
    eco = parse_system("eco=routed:r,routes=billing:spec,generalist=spec")
    routed = [{**_recs((9.0, 1, 1))[0], "route": "billing", "route_s": 0.8, "concurrency": 8}]
    cs = summarize_cost(eco, routed, prices, specs={"spec": spec}, busy=busy)
    assert cs.method == "mixed" and cs.per_request == pytest.approx(0.0002 + 0.001 * 0.8 / 8)
