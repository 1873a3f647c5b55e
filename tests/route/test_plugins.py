"""The router is an extension point: the rules router, and a plug-in registered like an entry point would be."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cadre.errors import ConfigError, NotFoundError
from cadre.route import GENERALIST, ROUTERS, RouteDecision, RouterSpec, fit_router, load_router, save_router
from cadre.route.strategies import Explanation


def test_rules_router_fits_saves_and_loads(tmp_path: Path) -> None:
    spec = RouterSpec.model_validate(
        {
            "strategy": "rules",
            "rules": {
                "routes": {
                    "invoices": {"keywords": ["invoice", "bill to"]},
                    "normalize": {"patterns": [r"^normali[sz]e:"]},
                }
            },
        }
    )
    data = [("Invoice INV-1 from ACME", "invoices"), ("Normalize: 3 May 2020", "normalize"), ("hello", None)]
    router = fit_router(data, spec=spec)
    assert router.report["training_accuracy"] == 1.0  # type: ignore[attr-defined]
    assert router.route("Please find the INVOICE attached").route == "invoices"
    assert router.route("invoiced?").route == GENERALIST  # whole words only
    save_router(router, tmp_path / "r")
    again = load_router(tmp_path / "r")
    assert again.route("normalise: 4/5/2021").route == "normalize"
    assert (
        again.route_chat([{"role": "user", "content": "and this one?"}], current="normalize").route
        == "normalize"
    )


def test_rules_need_a_rules_block_and_valid_regexes() -> None:
    with pytest.raises(ConfigError, match="needs a rules block"):
        fit_router([("a b", "x")], strategy="rules")
    with pytest.raises(ConfigError, match="not a valid regex"):
        fit_router([("a b", "x")], strategy="rules", rules={"routes": {"x": {"patterns": ["("]}}})


class EchoRouter:
    """A toy plug-in: routes to the first word of the text if it is a known route."""

    kind = "first-word"

    def __init__(self, routes: list[str]) -> None:
        self.routes = routes

    def route(self, text: str) -> RouteDecision:
        word = text.split()[0].lower()
        return RouteDecision(route=word if word in self.routes else GENERALIST, score=1.0)

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]:
        return [self.route(t) for t in texts]

    def route_chat(self, messages: Sequence[Any], *, current: str | None = None) -> RouteDecision:
        return self.route(messages[-1]["content"])

    def explain(self, text: str, *, k: int = 5) -> Explanation:
        return Explanation(decision=self.route(text))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "router.json").write_text(json.dumps({"kind": self.kind, "routes": self.routes}))


class EchoKind:
    name = "first-word"

    def fit(self, examples: Sequence[Any], *, spec: RouterSpec, embedder: Any) -> EchoRouter:
        return EchoRouter(sorted({ex.route for ex in examples if ex.route}))

    def load(self, directory: Path, manifest: dict[str, Any], *, embedder: Any) -> EchoRouter:
        return EchoRouter(manifest["routes"])


def test_a_plugin_router_is_fitted_saved_and_loaded_through_the_registry(tmp_path: Path) -> None:
    ROUTERS.register("first-word", EchoKind(), replace=True)
    router = fit_router([("billing refund", "billing"), ("shipping late", "shipping")], strategy="first-word")
    save_router(router, tmp_path / "r")
    assert load_router(tmp_path / "r").route("shipping where").route == "shipping"
    with pytest.raises(NotFoundError, match="unknown router"):
        fit_router([("a", "b")], strategy="firstword")
    with pytest.raises(ConfigError, match="not an embedding strategy"):
        fit_router([("a", "b")], strategy="auto", candidates=["first-word"])
