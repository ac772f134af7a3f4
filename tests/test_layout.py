"""The layout follows the data: each stage imports only earlier stages, and no module imports itself back.

The order (``docs/layout.md``, DESIGN's data flow)::

    errors < limits < spec < net < verify < trace < rules < profile < {simulate, execute} < {generate, viz} < ui < cli

Every ``import`` of a petriflow module counts: at the top, inside a function,
and under ``TYPE_CHECKING``, because each of them is a dependency someone
has to keep in their head. Stages of one rank (simulate and execute) may not
import each other: a trace reaches the simulator as data, through ``fit``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1] / "petriflow"
ORDER: dict[str, int] = {
    "errors": 0, "limits": 1, "raycluster": 1, "spec": 2, "net": 3, "verify": 4, "trace": 5, "rules": 6, "profile": 7,
    "simulate": 8, "execute": 8, "generate": 9, "viz": 9, "ui": 10, "cli": 11, "__main__": 12,
}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The petriflow modules ``path`` imports, resolved to module names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("petriflow")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("petriflow"):
            out.add(node.module)
            for a in node.names:  # `from petriflow.execute import servers` imports a module
                if (ROOT.parent / (node.module + "." + a.name).replace(".", "/")).with_suffix(".py").exists():
                    out.add(f"{node.module}.{a.name}")
    return out


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        g.add_node(mod)
        for dep in _imports(path):
            if dep != mod:
                g.add_edge(mod, dep)
    return g


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # the package root re-exports the public API lazily


def test_every_package_has_a_rank() -> None:
    stages = {_stage(_module(p)) for p in ROOT.rglob("*.py")} - {None}
    assert stages <= set(ORDER), f"give {sorted(stages - set(ORDER))} a place in ORDER"


def test_each_stage_imports_only_earlier_stages() -> None:
    wrong = []
    for mod, dep in _graph().edges:
        a, b = _stage(mod), _stage(dep)
        if a is None or b is None or a == b:
            continue
        if ORDER[b] >= ORDER[a]:
            wrong.append(f"{mod} imports {dep}")
    assert not wrong, "imports against the stage order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    """Between modules; a package's ``__init__`` only gathers its modules' names, so it is left out."""
    g = _graph()
    packages = {_module(p) for p in ROOT.rglob("__init__.py")}
    g.remove_nodes_from([n for n in list(g) if _stage(n) is None or n in packages])
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles[:5])


@pytest.mark.parametrize(("imported", "absent"), [("petriflow.execute", "petriflow.simulate"),
                                                  ("petriflow.simulate", "petriflow.execute"),
                                                  ("petriflow", "petriflow.")])
def test_importing_a_stage_loads_no_sibling(imported: str, absent: str) -> None:
    """In a fresh interpreter: the executor does not load the simulator, nor the other way round."""
    code = (f"import sys, {imported}; "
            f"print(sorted(m for m in sys.modules if m.startswith({absent!r}) and m != 'petriflow.errors'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"`import {imported}` loads {out.strip()}"
