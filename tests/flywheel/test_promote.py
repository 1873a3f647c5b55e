from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cadre.errors import ConfigError, NotFoundError
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
