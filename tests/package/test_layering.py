"""The package's layers, read from its source: every import, lazy ones included.

- no import cycle between the package's modules;
- ``core/`` (the AD-DROP mathematics) imports nothing but torch, the standard library and itself;
- nothing outside ``cli/`` imports ``cli/`` (commands sit on top; the library never needs them).
"""
import ast
import sys
from pathlib import Path

import pytest

from conftest import REPO  # noqa: E402

PACKAGE = REPO / "addrop_fairseq"
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set:
    """Absolute names of every module ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            # "from package import module" imports the module
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {m for m in imports_of(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def own_module(name: str) -> bool:
    return name == NAME or name.startswith(NAME + ".")


def test_the_parser_sees_lazy_and_relative_imports():
    # a function-level import in core/step.py's neighbours and a relative one in the package root
    assert f"{NAME}.checkpoint" in GRAPH[NAME]
    assert f"{NAME}.core.mask" in GRAPH[f"{NAME}.core.step"]


def test_no_import_cycle():
    # ignore the package-to-child edges that ``import pkg.sub`` implies (Python allows those)
    def children_edges(name):
        return {m for m in GRAPH[name]
                if not (MODULES[name].name == "__init__.py" and m.startswith(name + "."))}

    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(children_edges(node)):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_core_imports_only_torch_and_itself():
    allowed_roots = {"torch"} | set(sys.stdlib_module_names)
    for name, path in MODULES.items():
        if not name.startswith(f"{NAME}.core"):
            continue
        for imported in imports_of(path):
            if own_module(imported):
                assert imported.startswith(f"{NAME}.core"), f"{name} imports {imported}"
            else:
                assert imported.split(".")[0] in allowed_roots, f"{name} imports {imported}"


def test_only_cli_imports_cli():
    for name, path in MODULES.items():
        if name.startswith(f"{NAME}.cli"):
            continue
        bad = sorted(m for m in imports_of(path) if m.startswith(f"{NAME}.cli"))
        assert not bad, f"{name} imports {bad}"


def test_the_top_level_holds_a_handful_of_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 5, top
