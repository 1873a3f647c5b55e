"""Router strategies and their registry.

``ROUTERS`` maps a name to a ``RouterKind`` (an object with ``fit`` and ``load``). Built-ins are registered here
as lazy ``"module:attr"`` paths so that importing cadre stays cheap; a third-party package adds its own (an
LLM-as-router, a router calling a remote classifier) through the entry-point group ``cadre.routers``::

    [project.entry-points."cadre.routers"]
    llm = "my_package.llm_router:KIND"
"""

from __future__ import annotations

from cadre.registry import Registry
from cadre.route.strategies.base import Explanation, Head, Neighbor, RouterKind, SavableRouter

__all__ = [
    "EMBEDDING_STRATEGIES",
    "ROUTERS",
    "Explanation",
    "Head",
    "Neighbor",
    "RouterKind",
    "SavableRouter",
]

ROUTERS: Registry[RouterKind] = Registry("routers")
ROUTERS.register("centroid", "cadre.route.embedding:CENTROID")
ROUTERS.register("knn", "cadre.route.embedding:KNN")
ROUTERS.register("linear", "cadre.route.embedding:LINEAR")
ROUTERS.register("rules", "cadre.route.strategies.rules:KIND")

EMBEDDING_STRATEGIES = ("centroid", "knn", "linear")
