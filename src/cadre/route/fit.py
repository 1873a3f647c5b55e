"""``fit_router``: labelled examples in, a ready router out (strategy chosen by cross-validation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cadre.errors import ConfigError, DataError
from cadre.route.config import RouterSpec
from cadre.route.data import Example, parse_example
from cadre.route.protocol import Embedder
from cadre.route.strategies import ROUTERS, SavableRouter

__all__ = ["fit_router"]


def _as_examples(examples: Iterable[Example | dict[str, Any] | tuple[str, str | None]]) -> list[Example]:
    out = []
    for i, ex in enumerate(examples):
        if isinstance(ex, tuple):
            ex = {"text": ex[0], "route": ex[1]}
        out.append(ex if isinstance(ex, Example) else parse_example(ex, where=f"example {i}"))
    return out


def _check_routes(data: list[Example]) -> None:
    """For a learned router, one route and no out-of-scope example is no decision at all: everything would go to
    that route with score 1.0. Refuse it (one route plus out-of-scope examples is a real decision: route or
    generalist; a rules router decides by its patterns)."""
    routes = {ex.route for ex in data if ex.route is not None}
    if len(routes) == 1 and all(ex.route is not None for ex in data):
        only = next(iter(routes))
        raise DataError(
            f"only one route ({only!r}) and no out-of-scope examples: the router would send everything there "
            f"with score 1.0; add examples of a second route or out-of-scope ones (route null), or send "
            f"model={only!r} without a router"
        )


def fit_router(
    examples: Iterable[Example | dict[str, Any] | tuple[str, str | None]],
    *,
    spec: RouterSpec | None = None,
    embedder: Embedder | None = None,
    progress: bool = False,
    **overrides: Any,
) -> SavableRouter:
    """Build a router from labelled examples.

    Args:
        examples: ``Example``s, ``{"text", "route"}`` dicts or ``(text, route)`` pairs; route None = out of scope.
        spec: settings (defaults: ``RouterSpec()``); keyword ``overrides`` replace single fields
            (``fit_router(data, strategy="knn", ood_alpha=0.1)``).
        embedder: the embedding model (default: the bundled all-MiniLM-L6-v2).
        progress: show a progress bar while embedding large sets.

    Raises:
        DataError: too few examples for a route, conflicting labels, empty text, one route without
            out-of-scope examples.
        ConfigError / NotFoundError: an unknown strategy or a bad setting.
    """
    base = spec or RouterSpec()
    if overrides:
        base = RouterSpec.model_validate({**base.model_dump(), **overrides})
    data = _as_examples(examples)
    from cadre.route.embedding import HeadKind, fit_embedding_router

    if base.strategy != "auto":
        chosen = ROUTERS.get(base.strategy)
        if isinstance(chosen, HeadKind):  # a learned head (rules and plugins decide on their own)
            _check_routes(data)
        return chosen.fit(data, spec=base, embedder=embedder)

    kinds: dict[str, HeadKind] = {}
    for name in base.candidates:
        kind = ROUTERS.get(name)
        if not isinstance(kind, HeadKind):
            raise ConfigError(
                f"candidate {name!r} is not an embedding strategy; 'auto' chooses among those only"
            )
        kinds[name] = kind
    _check_routes(data)
    return fit_embedding_router(data, spec=base, embedder=embedder, candidates=kinds, progress=progress)
