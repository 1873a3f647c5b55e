"""Store implementations, looked up by name in the ``stores`` registry.

Built-ins: ``sqlite-vec`` (default, embedded, on disk) and ``pgvector`` (PostgreSQL server). A package adds
its own through the entry-point group ``cadre.stores`` pointing at a :class:`~cadre.knowledge.protocol.StoreFactory`.
"""

from __future__ import annotations

from cadre.knowledge.protocol import StoreFactory
from cadre.registry import Registry

__all__ = ["DEFAULT_STORE", "STORES"]

DEFAULT_STORE = "sqlite-vec"
STORES: Registry[StoreFactory] = Registry("stores")
STORES.register("sqlite-vec", "cadre.knowledge.stores.sqlite_vec:SqliteVecStore.open")
STORES.register("pgvector", "cadre.knowledge.stores.pgvector:PgVectorStore.open")
