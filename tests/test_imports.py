"""The package's import graph: no cycles, and TensorFlow only where it is needed.

Module-level imports are read from the source (``ast``), so the test is instant; imports inside
functions are lazy by design and cannot form an import-time cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fcn"
HEAVY = {"tensorflow", "keras"}
# Modules that command lines import before any work, or that must start instantly.
LIGHT_MODULES = {
    "core.palette",
    "core.errors",
    "core.files",
    "core.lazy",
    "core.images",
    "core.metrics",
    "core.evaluate",
    "model.checkpoints",
    "training.rundir",
    "data.pipeline",
    "model.runtime",
    "training.trainer",
    "inference.predict",
    "inference.engine",
    "data.synthetic",
    "study.scoring",
    "study.report",
    "data.deepglobe",
    "core.figures",
    "inference.geo",
    "inference.scenes",
    "inference.areas",
}


def module_level_imports(path: Path) -> set[str]:
    """Top-level modules (``fcn.X`` for the package's own) imported when ``path`` is imported."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name if a.name.startswith("fcn.") else a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.module == "fcn" or (node.module or "").startswith("fcn."):
                found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
            else:
                found.add(node.module.split(".")[0])
    return found


def graph() -> dict[str, set[str]]:
    modules = {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py") if p.stem != "__init__"
    }
    edges = {}
    for name, path in modules.items():
        edges[name] = {
            m.removeprefix("fcn.")
            for m in module_level_imports(path)
            if m.startswith("fcn.") and m.removeprefix("fcn.") in modules
        }
    return edges


def heavy_imports(path: Path) -> set[str]:
    return module_level_imports(path) & HEAVY


def test_there_is_no_import_cycle():
    edges = graph()
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(trail + [node])}"
        state[node] = "open"
        for child in sorted(edges[node]):
            visit(child, trail + [node])
        state[node] = "done"

    for node in sorted(edges):
        visit(node, [])


def test_light_modules_do_not_import_tensorflow_even_indirectly():
    edges = graph()
    modules = {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}

    def reachable(node, seen):
        for child in edges[node]:
            if child not in seen:
                seen.add(child)
                reachable(child, seen)
        return seen

    for name in sorted(LIGHT_MODULES):
        for module in {name} | reachable(name, set()):
            assert not heavy_imports(modules[module]), f"fcn.{name} imports TensorFlow/Keras via fcn.{module}"


@pytest.mark.parametrize("module", sorted(LIGHT_MODULES))
def test_importing_alone_works_without_tensorflow(module):
    # One process for all modules would hide an import that works only after another module's.
    code = f"import sys, fcn.{module}; sys.exit(int(any(m in sys.modules for m in ('tensorflow', 'keras'))))"
    assert subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, timeout=60).returncode == 0
