"""``fit_router``: labelled examples in, a ready router out (strategy chosen by cross-validation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cadre.errors import ConfigError
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
        DataError: too few examples for a route, conflicting labels, empty text.
        ConfigError / NotFoundError: an unknown strategy or a bad setting.
    """
    base = spec or RouterSpec()
    if overrides:
        base = RouterSpec.model_validate({**base.model_dump(), **overrides})
    data = _as_examples(examples)
    if base.strategy != "auto":
        return ROUTERS.get(base.strategy).fit(data, spec=base, embedder=embedder)

    from cadre.route.embedding import HeadKind, fit_embedding_router

    kinds: dict[str, HeadKind] = {}
    for name in base.candidates:
        kind = ROUTERS.get(name)
        if not isinstance(kind, HeadKind):
            raise ConfigError(
                f"candidate {name!r} is not an embedding strategy; 'auto' chooses among those only"
            )
        kinds[name] = kind
    return fit_embedding_router(data, spec=base, embedder=embedder, candidates=kinds, progress=progress)
