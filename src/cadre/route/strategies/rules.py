"""A rules router: keywords and regular expressions per route, from a YAML/JSON rules block; no embeddings.

Useful as a transparent baseline, for hard business rules ("anything mentioning an invoice number goes to the
invoice specialist"), and as an example of a router that is not an embedding router.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadre.errors import ConfigError, DataError
from cadre.route.config import RouterSpec, RulesSpec
from cadre.route.data import Example
from cadre.route.protocol import GENERALIST, Embedder, RouteDecision
from cadre.route.strategies.base import Explanation
from cadre.runtime.protocol import ChatMessage

__all__ = ["KIND", "RulesKind", "RulesRouter"]

MANIFEST_FILE = "router.json"


class RulesRouter:
    """The first route (in the rules' order) with a matching keyword or pattern wins; else ``default``."""

    kind = "rules"

    def __init__(self, rules: RulesSpec, *, report: dict[str, Any] | None = None) -> None:
        self.rules = rules
        self.routes = [r for r in rules.routes if r != GENERALIST]
        self.report: dict[str, Any] = report or {}
        self._compiled: list[tuple[str, list[re.Pattern[str]]]] = []
        for route, rs in rules.routes.items():
            pats = [re.compile(rf"\b{re.escape(k)}\b", re.IGNORECASE) for k in rs.keywords]
            for p in rs.patterns:
                try:
                    pats.append(re.compile(p, re.IGNORECASE))
                except re.error as err:
                    raise ConfigError(
                        f"rules.routes.{route}.patterns: {p!r} is not a valid regex ({err})"
                    ) from None
            self._compiled.append((route, pats))

    def _match(self, text: str) -> tuple[str, str]:
        for route, pats in self._compiled:
            for p in pats:
                if p.search(text):
                    return route, p.pattern
        return self.rules.default, ""

    def route(self, text: str) -> RouteDecision:
        if not text.strip():
            raise DataError("cannot route an empty text; send the user's message")
        t0 = time.perf_counter()
        route, pattern = self._match(text)
        reason = f"rule {pattern!r}" if pattern else f"no rule matched -> {route}"
        return RouteDecision(
            route=route, score=1.0 if pattern else 0.0, reason=reason, seconds=time.perf_counter() - t0
        )

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]:
        return [self.route(t) for t in texts]

    def route_chat(self, messages: Sequence[ChatMessage], *, current: str | None = None) -> RouteDecision:
        users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content", "").strip()]
        if not users:
            raise DataError("route_chat needs at least one non-empty user message")
        d = self.route(users[-1])
        if d.route == self.rules.default and current is not None:  # no rule fired: stay where we are
            return RouteDecision(
                route=current, score=0.0, reason=f"sticky: no rule matched, stays on {current}"
            )
        return d

    def explain(self, text: str, *, k: int = 5) -> Explanation:
        return Explanation(decision=self.route(text), details={"strategy": "rules"})

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": 1,
            "kind": self.kind,
            "routes": self.routes,
            "rules": self.rules.model_dump(mode="json"),
            "report": self.report,
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


class RulesKind:
    name = "rules"

    def fit(self, examples: Sequence[Example], *, spec: RouterSpec, embedder: Embedder | None) -> RulesRouter:
        """Nothing is learnt: the rules come from ``spec.rules``; ``examples`` measure how well they do."""
        if spec.rules is None:
            raise ConfigError(
                "strategy 'rules' needs a rules block: router.rules.routes.<name>.keywords: [...]"
            )
        router = RulesRouter(spec.rules)
        if examples:
            hits = sum(router.route(ex.text).route == (ex.route or GENERALIST) for ex in examples)
            router.report = {"strategy": "rules", "training_accuracy": hits / len(examples)}
        return router

    def load(self, directory: Path, manifest: dict[str, Any], *, embedder: Embedder | None) -> RulesRouter:
        return RulesRouter(RulesSpec.model_validate(manifest["rules"]), report=manifest.get("report"))


KIND = RulesKind()
