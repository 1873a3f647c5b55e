"""cadre.serve: every specialist, the router and the generalist behind one OpenAI-compatible endpoint.

Layers (H10): ``chat.py`` / ``completions.py`` / ``models.py`` / ``embeddings.py`` / ``admin.py`` only parse and
dispatch; :class:`~cadre.serve.serving.Gateway` serves requests (limits, grounding, generation, fallback, streaming,
embeddings), asking :mod:`cadre.serve.routing` who answers and :class:`~cadre.serve.served_models.ServedModels`
what is loaded (models, adapters, router, hot reload); :mod:`cadre.ecosystem.spec` is the ``ecosystem.yaml`` schema;
:mod:`cadre.serve.protocol` holds the OpenAI wire models; :mod:`cadre.serve.errors` the one error shape.

    from cadre.serve import create_app, serve
    serve("ecosystem.yaml", host="127.0.0.1", port=8000)

Importing this package loads FastAPI but no model; models load when the app starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadre.ecosystem.spec import (
        AUTO_MODEL,
        DecodingDefaults,
        EcosystemSpec,
        GeneralistSpec,
        KnowledgeRef,
        RoutingSpec,
        ServerSpec,
        SpecialistSpec,
        check_adapter_path,
        check_admin_specialist,
        load_ecosystem,
        parse_ecosystem,
    )
    from cadre.serve.app import check_keys, create_app, serve
    from cadre.serve.auth import ADMIN_ENV_VAR, ApiKeys, keys_from_env
    from cadre.serve.check import check_ecosystem
    from cadre.serve.lifecycle import bind_socket
    from cadre.serve.served_models import ServedModels
    from cadre.serve.serving import Gateway

__all__ = [
    "ADMIN_ENV_VAR",
    "AUTO_MODEL",
    "ApiKeys",
    "DecodingDefaults",
    "EcosystemSpec",
    "Gateway",
    "GeneralistSpec",
    "KnowledgeRef",
    "RoutingSpec",
    "ServedModels",
    "ServerSpec",
    "SpecialistSpec",
    "bind_socket",
    "check_adapter_path",
    "check_admin_specialist",
    "check_ecosystem",
    "check_keys",
    "create_app",
    "keys_from_env",
    "load_ecosystem",
    "parse_ecosystem",
    "serve",
]

_LAZY = {
    "create_app": "cadre.serve.app",
    "serve": "cadre.serve.app",
    "check_keys": "cadre.serve.app",
    "ADMIN_ENV_VAR": "cadre.serve.auth",
    "ApiKeys": "cadre.serve.auth",
    "bind_socket": "cadre.serve.lifecycle",
    "keys_from_env": "cadre.serve.auth",
    "check_ecosystem": "cadre.serve.check",
    "ServedModels": "cadre.serve.served_models",
    "Gateway": "cadre.serve.serving",
    "AUTO_MODEL": "cadre.ecosystem.spec",
    "DecodingDefaults": "cadre.ecosystem.spec",
    "EcosystemSpec": "cadre.ecosystem.spec",
    "GeneralistSpec": "cadre.ecosystem.spec",
    "KnowledgeRef": "cadre.ecosystem.spec",
    "RoutingSpec": "cadre.ecosystem.spec",
    "ServerSpec": "cadre.ecosystem.spec",
    "SpecialistSpec": "cadre.ecosystem.spec",
    "check_adapter_path": "cadre.ecosystem.spec",
    "check_admin_specialist": "cadre.ecosystem.spec",
    "load_ecosystem": "cadre.ecosystem.spec",
    "parse_ecosystem": "cadre.ecosystem.spec",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cadre.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
