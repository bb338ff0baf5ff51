"""Check geoseg's layer rule, cycles and sizes (docs/ARCHITECTURE.md); prints violations, exit 1 if any.

Every ``import`` is counted, also those inside functions. A module may import
modules of its own package and of packages in lower layers only; packages in
the same layer do not import each other. Modules stay under
``MAX_MODULE_LINES`` lines and functions under ``MAX_FUNCTION_LINES`` (the
``def`` line to the last line, decorators aside; a CLI command's docstring,
its ``--help`` text, aside), except where ``EXCEPTIONS`` says why.

Example:
    python scripts/check_architecture.py            # violations, exit 1 if any
    python scripts/check_architecture.py --graph    # every edge, layer by layer
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "geoseg"

LAYERS: dict[str, int] = {
    "geoseg._compat": 0,
    "geoseg.core": 0,
    "geoseg.io": 1,
    "geoseg.model": 2,
    "geoseg.report": 2,
    "geoseg.inference": 3,
    "geoseg.polygonize": 3,
    "geoseg.training": 4,
    "geoseg.flows": 4,
    "geoseg.cli": 5,
    "geoseg.__main__": 6,
    "geoseg": 6,  # the package facade: lazy names for the public API
}
"""Layer of each package (0 is the bottom). Imports go to a lower layer or stay in the package."""

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
EXCEPTIONS: dict[str, str] = {
    "geoseg.cli.options:inference_options": "a list of click option declarations shared by predict and run, no logic",
}
"""``module:function`` (or ``module``) allowed over the limits, with the reason."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The longest key of :data:`LAYERS` that ``module`` is or lies in."""
    best = ""
    for key in LAYERS:
        if (module == key or module.startswith(key + ".")) and len(key) > len(best):
            best = key
    if not best:
        raise KeyError(f"{module} lies in no layer of LAYERS: add its package")
    return best


def imports(path: Path, module: str) -> Iterator[tuple[str, int]]:
    """Every geoseg module ``path`` imports (``from geoseg.x import name`` counts ``geoseg.x.name`` when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "geoseg":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*pkg, *([base] if base else [])])
            if base.split(".")[0] != "geoseg":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if _is_module(sub) else base), node.lineno


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        edges[name] = {target for target, _ in imports(path, name) if target != name}
    return edges


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for source, targets in edges.items():
        sp = package_of(source)
        for target in sorted(targets):
            tp = package_of(target)
            if tp != sp and LAYERS[tp] >= LAYERS[sp]:
                found.append(f"{source} (layer {LAYERS[sp]}) imports {target} (layer {LAYERS[tp]})")
    return found


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """Module-level cycles (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[str] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append("cycle: " + " -> ".join(sorted(component)))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def size_violations() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and name not in EXCEPTIONS:
            found.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if name.startswith("geoseg.cli.") and ast.get_docstring(node):
                    length -= _docstring_lines(node)  # a command's docstring is its --help text
                if length > MAX_FUNCTION_LINES and f"{name}:{node.name}" not in EXCEPTIONS:
                    found.append(f"{name}:{node.name}: {length} lines (at most {MAX_FUNCTION_LINES})")
    return found


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    return (first.end_lineno or first.lineno) - first.lineno + 1


def main(argv: list[str]) -> int:
    edges = graph()
    if "--graph" in argv:
        for source in sorted(edges, key=lambda m: (LAYERS[package_of(m)], m)):
            print(f"[{LAYERS[package_of(source)]}] {source} -> {', '.join(sorted(edges[source])) or '-'}")
        return 0
    problems = layer_violations(edges) + cycles(edges) + size_violations()
    for line in problems:
        print(line)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} import edges, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
