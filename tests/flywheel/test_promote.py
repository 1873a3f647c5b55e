from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cadre.errors import ConfigError, DataError, NotFoundError
from cadre.flywheel import promote, rollback
from cadre.serve import load_ecosystem
from cadre.traffic import read_actions

SUPPORT = [f"my order {i} has not arrived, where is it?" for i in range(8)] + ["refund my purchase please"]
LOGIN = [f"I cannot log in to account {i}, password reset fails" for i in range(9)]
INVOICES = [
    f"Extract the fields of invoice INV-{i:03d} from Acme, total {i}.50 EUR, due 2024-0{1 + i % 9}-15"
    for i in range(12)
]

ECO = """# my ecosystem
specialists:
  - name: support
    base: smollm2-135m
    examples: {support}
  - name: login
    base: smollm2-135m
    examples: {login}
generalist:
  model: smollm2-135m
router:
  build: {{strategy: centroid}}   # one strategy: no cross-validated choice, a quicker fit
"""


def _setup(tmp: Path) -> tuple[Path, Path]:
    eco = tmp / "ecosystem.yaml"
    eco.write_text(ECO.format(support=json.dumps(SUPPORT), login=json.dumps(LOGIN)))
    train = tmp / "train.jsonl"
    train.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "{}"}]})
            + "\n"
            for t in INVOICES
        )
    )
    return eco, train


def test_promote_adds_the_route_then_rollback_restores(tmp_path: Path) -> None:
    eco, train = _setup(tmp_path)
    before = eco.read_text()
    result = promote(eco, name="invoices", base="smollm2-135m", train_file=train, max_examples=10)
    spec = load_ecosystem(eco)
    new = spec.specialist("invoices")
    assert new is not None and len(new.examples) == 10 and set(new.examples) <= set(INVOICES)
    assert [s.name for s in spec.specialists] == ["support", "login", "invoices"]
    assert "3 routes" in result.router and result.reloaded is None
    assert (Path(result.backup) / "ecosystem.yaml").read_text() == before
    log = read_actions(tmp_path / "flywheel.log")
    assert len(log) == 1 and "promote" in log[0] and "'invoices'" in log[0]
    with pytest.raises(ConfigError, match="already in"):
        promote(eco, name="invoices", base="smollm2-135m", train_file=train)
    back = rollback(eco)
    assert eco.read_text() == before and back.restored == result.backup
    assert not Path(result.backup).exists()
    assert "rollback" in read_actions(tmp_path / "flywheel.log")[-1]
    with pytest.raises(NotFoundError, match="no promotion to roll back"):
        rollback(eco)


def test_an_invalid_promotion_changes_nothing(tmp_path: Path) -> None:
    eco, train = _setup(tmp_path)
    before = eco.read_text()
    with pytest.raises(ConfigError):
        promote(eco, name="auto", base="smollm2-135m", train_file=train)  # a reserved name
    with pytest.raises(ConfigError, match="admin key"):
        promote(eco, name="inv", base="smollm2-135m", train_file=train, admin_url="http://127.0.0.1:9")
    assert eco.read_text() == before
    assert yaml.safe_load(before)["specialists"][0]["name"] == "support"
    assert not list(tmp_path.glob(".flywheel/*")) and not list(tmp_path.glob(".*.promote.yaml"))


def _shadowed(tmp: Path, agree: int, n: int = 40) -> tuple[Path, Path, Path]:
    from cadre.traffic import ShadowRecord, TrafficRecord, TrafficStore

    eco, train = _setup(tmp)
    data = yaml.safe_load(eco.read_text())
    data["specialists"].append({"name": "invoices", "base": "smollm2-135m", "description": "in shadow"})
    data["capture"] = {"store": "traffic.db", "shadow": [{"specialist": "invoices", "scope": "generalist"}]}
    eco.write_text(yaml.safe_dump(data, sort_keys=False))
    db = tmp / "traffic.db"
    with TrafficStore(db, create=True) as store:
        msgs = [{"role": "user", "content": "invoice"}]
        store.insert(
            [TrafficRecord(f"r{i}", "chat", "generalist", "generalist", msgs, "{}") for i in range(n)]
        )
        store.insert_shadow(
            [ShadowRecord(f"r{i}", "invoices", "{}" if i < agree else "no") for i in range(n)]
        )
    return eco, train, db


def test_promotion_quotes_the_shadow_evidence_and_can_be_gated_on_it(tmp_path: Path) -> None:
    eco, train, db = _shadowed(tmp_path, agree=30)
    before = eco.read_text()
    with pytest.raises(
        DataError, match=r"not promoted: shadow: exact_match agreement with the generalist 75\.0%"
    ):
        promote(
            eco, name="invoices", base="smollm2-135m", train_file=train, shadow_store=db, min_agreement=0.7
        )
    assert eco.read_text() == before and not list(tmp_path.glob(".flywheel/*"))
    with pytest.raises(ConfigError, match="needs the shadow evidence"):
        promote(eco, name="invoices", base="smollm2-135m", train_file=train, min_agreement=0.5)
    result = promote(
        eco, name="invoices", base="smollm2-135m", train_file=train, shadow_store=db, min_agreement=0.5
    )
    assert (
        result.shadow is not None and result.shadow.n == 40 and result.shadow.agreement == pytest.approx(0.75)
    )
    assert result.shadow.low >= 0.5
    spec = load_ecosystem(eco)
    moved = spec.specialist("invoices")
    assert moved is not None and len(moved.examples) == 12 and moved.description == "in shadow"
    assert spec.capture is not None and spec.capture.shadow == []
    assert [s.name for s in spec.specialists] == ["support", "login", "invoices"]
    log = read_actions(tmp_path / "flywheel.log")[-1]
    assert "moved out of shadow" in log and "agreement with the generalist 75.0%" in log
    rollback(eco)
    assert eco.read_text() == before
