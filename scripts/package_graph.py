"""Draw cadre's package dependency graph from the code into docs/architecture.md (a Mermaid flowchart).

    python scripts/package_graph.py           # rewrite the block between the package-graph markers
    python scripts/package_graph.py --check   # exit 1 when the block is out of date

The imports come from grimp (installed with import-linter, a dev dependency), which parses the sources of this
checkout's ``src/`` without importing them; the layers come from the ``layers`` contract in pyproject.toml. An
edge that breaks that contract (upward, or between independent siblings) is drawn dotted and labelled.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = "cadre"
START = "<!-- package-graph:start -->"
END = "<!-- package-graph:end -->"
# Every package may import the error types; drawing those edges would hide the others.
UNDRAWN_TARGETS = frozenset({"errors"})


@dataclass(frozen=True)
class Layer:
    names: tuple[str, ...]
    independent: bool


def read_layers(pyproject: Path = PYPROJECT) -> list[Layer]:
    """The layers of the import-linter contract whose id is ``layers``, top first (names relative to cadre)."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    contract = next(c for c in contracts if c.get("id") == "layers")
    layers = []
    for raw in contract["layers"]:
        separator = "|" if "|" in raw else ":"
        names = tuple(part.strip().strip("()") for part in raw.split(separator))
        layers.append(Layer(names=names, independent=separator == "|" and len(names) > 1))
    return layers


def package_imports(src: Path = ROOT / "src") -> tuple[list[str], set[tuple[str, str]]]:
    """cadre's top-level packages/modules and the (importer, imported) pairs between them, from the sources."""
    try:
        import grimp
    except ImportError as err:
        raise SystemExit("grimp is missing: install the dev extra (pip install -e '.[dev]')") from err
    sys.path.insert(0, str(src))
    try:
        graph = grimp.build_graph(PACKAGE, cache_dir=None)
    finally:
        sys.path.remove(str(src))
    children = sorted(child.removeprefix(f"{PACKAGE}.") for child in graph.find_children(PACKAGE))
    edges = {
        (a, b)
        for a in children
        for b in children
        if a != b
        and graph.direct_import_exists(importer=f"{PACKAGE}.{a}", imported=f"{PACKAGE}.{b}", as_packages=True)
    }
    return children, edges


def breaks_layers(importer: str, imported: str, layers: list[Layer]) -> bool:
    """Whether importing ``imported`` from ``importer`` goes up a layer or across independent siblings."""
    position = {name: (i, layer) for i, layer in enumerate(layers) for name in layer.names}
    if importer not in position or imported not in position:
        return False
    (i, layer), (j, _) = position[importer], position[imported]
    return j < i or (i == j and layer.independent)


def mermaid(children: list[str], edges: set[tuple[str, str]], layers: list[Layer]) -> str:
    """The Mermaid flowchart: one box per layer, top layer first, one arrow per importing package pair."""
    lines = ["```mermaid", "flowchart TD"]
    present_layers = [[name for name in layer.names if name in children] for layer in layers]
    placed: set[str] = set()
    for number, present in enumerate(filter(None, present_layers), start=1):
        placed.update(present)
        lines.append(f'  subgraph layer{number}["layer {number}"]')
        lines.extend(f"    {name}" for name in present)
        lines.append("  end")
    lines.extend(f"  {name}" for name in children if name not in placed)
    for importer, imported in sorted(edges):
        if imported in UNDRAWN_TARGETS:
            continue
        if breaks_layers(importer, imported, layers):
            lines.append(f"  {importer} -. breaks layers .-> {imported}")
        else:
            lines.append(f"  {importer} --> {imported}")
    lines.append("```")
    return "\n".join(lines)


def render_graph() -> str:
    children, edges = package_imports()
    return mermaid(children, edges, read_layers())


def with_graph(doc: str, graph: str) -> str:
    """``doc`` with the text between the markers replaced by ``graph``."""
    head, start, rest = doc.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{DOC}: the markers {START} and {END} are missing")
    return f"{head}{START}\n{graph}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the graph in the doc is out of date")
    args = parser.parse_args(argv)
    doc = DOC.read_text(encoding="utf-8")
    updated = with_graph(doc, render_graph())
    if args.check:
        if updated != doc:
            print(f"{DOC.relative_to(ROOT)} is out of date: run `python scripts/package_graph.py`")
            return 1
        return 0
    if updated != doc:
        DOC.write_text(updated, encoding="utf-8")
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
