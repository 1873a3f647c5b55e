"""The router behind ``model="auto"``: the one an ecosystem names, or one fitted from its specialists' examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cadre.ecosystem.spec import EcosystemSpec

if TYPE_CHECKING:
    from cadre.route import Router

__all__ = ["build_router"]


def build_router(spec: EcosystemSpec) -> tuple[Router | None, str]:
    """The router of ``spec``: loaded from ``router.path``, else fitted from the specialists' examples.

    Returns (None, why) when there is nothing to build a router from.
    """
    from cadre.route import Example, fit_router, load_router

    if spec.router.path:
        path = spec.resolve(spec.router.path)
        return load_router(path), f"loaded from {path}"
    with_examples = [s for s in spec.specialists if s.examples]
    if not with_examples:
        return None, "no specialist has examples"
    examples = [Example(text=t, route=s.name) for s in with_examples for t in s.examples]
    examples += [Example(text=t, route=None) for t in spec.router.out_of_scope]
    router = fit_router(examples, spec=spec.router.build)
    return router, f"fitted at start-up on {len(examples)} examples"
