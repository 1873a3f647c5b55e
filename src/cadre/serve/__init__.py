"""cadre.serve: every specialist, the router and the generalist behind one OpenAI-compatible endpoint.

Layers (H10): ``chat.py`` / ``completions.py`` / ``models.py`` / ``embeddings.py`` / ``admin.py`` only parse and
dispatch; :class:`~cadre.serve.serving.Gateway` holds the logic (routing, grounding, generation, fallback, limits,
reload); :mod:`cadre.serve.protocol` holds the OpenAI wire models; :mod:`cadre.serve.errors` the one error shape.

    from cadre.serve import create_app, serve
    serve("ecosystem.yaml", host="127.0.0.1", port=8000)

Importing this package loads FastAPI but no model; models load when the app starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadre.config.ecosystem import EcosystemSpec, load_ecosystem, parse_ecosystem
    from cadre.serve.app import create_app, serve
    from cadre.serve.auth import ApiKeys
    from cadre.serve.check import check_ecosystem
    from cadre.serve.serving import Gateway

__all__ = [
    "ApiKeys",
    "EcosystemSpec",
    "Gateway",
    "check_ecosystem",
    "create_app",
    "load_ecosystem",
    "parse_ecosystem",
    "serve",
]

_LAZY = {
    "create_app": "cadre.serve.app",
    "serve": "cadre.serve.app",
    "ApiKeys": "cadre.serve.auth",
    "check_ecosystem": "cadre.serve.check",
    "Gateway": "cadre.serve.serving",
    "EcosystemSpec": "cadre.config.ecosystem",
    "load_ecosystem": "cadre.config.ecosystem",
    "parse_ecosystem": "cadre.config.ecosystem",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cadre.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
