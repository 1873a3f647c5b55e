"""Save and load a router directory: ``router.json`` + ``arrays.safetensors`` (+ ``examples.jsonl``).

Only JSON and safetensors are read back (no pickle), so a router directory from elsewhere cannot run code.
``router.json`` records the strategy and the embedding model id; loading with another embedder is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cadre.errors import ModelLoadError, NotFoundError
from cadre.route.protocol import Embedder
from cadre.route.strategies import ROUTERS, SavableRouter

__all__ = ["MANIFEST_FILE", "load_router", "read_manifest", "save_router"]

MANIFEST_FILE = "router.json"


def save_router(router: SavableRouter, directory: str | Path) -> Path:
    """Write ``router`` into ``directory`` (created if needed); returns the directory."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ModelLoadError(f"{d} exists and is not a directory; pick another --out")
    router.save(d)
    return d


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Parse ``router.json`` of a router directory."""
    d = Path(directory)
    path = d / MANIFEST_FILE
    if not path.is_file():
        raise NotFoundError(
            f"{d} is not a router directory (no {MANIFEST_FILE}); build one with `cadre route fit --out {d}`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} is not valid JSON ({err.msg}); refit the router") from None
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise ModelLoadError(f"{path} has no 'kind'; refit the router with `cadre route fit`")
    if int(manifest.get("format", 1)) > 1:
        raise ModelLoadError(
            f"{path} was written by a newer cadre (format {manifest['format']}); upgrade cadre"
        )
    return manifest


def load_router(directory: str | Path, *, embedder: Embedder | None = None) -> SavableRouter:
    """Load a router saved by ``save_router`` / ``cadre route fit``.

    Args:
        directory: the router directory.
        embedder: the embedding model to use (default: the bundled one); must be the one it was built with.

    Raises:
        NotFoundError: not a router directory, or its strategy is not installed.
        ModelLoadError: corrupt files, or a different embedding model than the one it was built with.
    """
    d = Path(directory)
    manifest = read_manifest(d)
    return ROUTERS.get(str(manifest["kind"])).load(d, manifest, embedder=embedder)
