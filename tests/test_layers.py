"""The package's layout: imports go downward only (no cycle), no function-local import of the
package's own modules, no module over 500 lines; subpackages import only lower layers."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import jaxgrasp

ROOT = Path(jaxgrasp.__file__).resolve().parent
# Subpackages from the bottom up: a module may import its own subpackage and those listed before it.
LAYERS = ("core", "mesh", "hand", "quality", "planning", "sim", "learning", "cli")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module ``name`` refers to (``a.b.c`` may be a name ``c`` inside module ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(mod: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(imported package module, line, at module level)`` of one module."""
    tree = ast.parse(path.read_text())
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    top = {id(n) for n in tree.body}
    for n in tree.body:  # module-level try/if blocks still run at import time
        if isinstance(n, (ast.If, ast.Try)):
            top |= {id(c) for c in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] or [base]
        for name in names:
            if name.split(".")[0] != "jaxgrasp":
                continue
            target = _resolve(name, modules)
            if target is not None and target != mod:
                out.append((target, node.lineno, id(node) in top))
    return out


def _graph():
    modules = _modules()
    return modules, {m: _imports(m, p, modules) for m, p in modules.items()}


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_cycle():
    modules, graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle of the layering: leave
    # the edges from a package to its own children out, then look for cycles (Tarjan's SCC).
    edges = {m: {t for t, _, _ in imps if not (modules[m].name == "__init__.py" and t.startswith(m + "."))}
             for m, imps in graph.items()}
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not sccs, f"import cycles: {sccs}"


def test_no_function_local_import_of_the_package():
    _, graph = _graph()
    local = [(m, t, line) for m, imps in graph.items() for t, line, top in imps if not top]
    assert not local, f"function-local imports of jaxgrasp modules: {local}"


def test_subpackages_import_downward_only():
    _, graph = _graph()
    bad = []
    for m, imps in graph.items():
        lm = _layer(m)
        if lm is None:
            continue
        for t, line, _ in imps:
            lt = _layer(t)
            if lt is None and t != "jaxgrasp" or lt is not None and lt > lm:
                bad.append(f"{m}:{line} -> {t}")
            if t == "jaxgrasp":
                bad.append(f"{m}:{line} imports the top-level package")
    assert not bad, "upward imports: " + "; ".join(bad)


def test_modules_are_under_500_lines():
    modules = _modules()
    long = {m: n for m, p in modules.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


@pytest.mark.parametrize("source,cycle", [
    ("import jaxgrasp.b\n", True), ("def f():\n    import jaxgrasp.b\n", True), ("import os\n", False)])
def test_the_walker_sees_cycles(tmp_path, monkeypatch, source, cycle):
    """The cycle check itself can fail: two modules importing each other are caught."""
    pkg = tmp_path / "jaxgrasp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(source)
    (pkg / "b.py").write_text("import jaxgrasp.a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    if cycle:
        with pytest.raises(AssertionError, match="cycles"):
            test_no_import_cycle()
    else:
        test_no_import_cycle()


@pytest.mark.parametrize("old,new,name", [
    ("jaxgrasp.batch", "jaxgrasp.planning.batch", "plan_batch"),
    ("jaxgrasp.baseline", "jaxgrasp.planning.baseline", "anneal"),
    ("jaxgrasp.data", "jaxgrasp.learning.data", "load_split"),
    ("jaxgrasp.render", "jaxgrasp.mesh.render", "render_depth")])
def test_old_module_spellings_still_work_and_warn(old, new, name):
    """Module paths the README documented before the layering keep working, with a warning."""
    import importlib

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.")):
        mod = importlib.import_module(old)
    assert getattr(mod, name) is getattr(importlib.import_module(new), name)
