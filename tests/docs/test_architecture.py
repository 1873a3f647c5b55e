"""docs/architecture.md stays true to the code: its package graph is the one scripts/package_graph.py draws."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _package_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_graph", ROOT / "scripts" / "package_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_doc_has_the_graph_markers() -> None:
    package_graph = _package_graph()
    doc = package_graph.DOC.read_text(encoding="utf-8")
    assert package_graph.START in doc and package_graph.END in doc


def test_package_graph_in_doc_is_current() -> None:
    pytest.importorskip(
        "grimp", reason="grimp (installed with import-linter, a dev dependency) draws the package graph"
    )
    package_graph = _package_graph()
    doc = package_graph.DOC.read_text(encoding="utf-8")
    assert package_graph.with_graph(doc, package_graph.render_graph()) == doc, (
        "docs/architecture.md is out of date: run `python scripts/package_graph.py`"
    )


def test_upward_import_is_drawn_as_breaking_the_layers() -> None:
    package_graph = _package_graph()
    layers = package_graph.read_layers()
    assert package_graph.breaks_layers("runtime", "cli", layers)
    assert package_graph.breaks_layers("route", "knowledge", layers)
    assert not package_graph.breaks_layers("cli", "runtime", layers)
