"""The package's import graph, read from the source with ``ast`` (function-level imports included).

Rules (docs/ARCHITECTURE.md explains them):
- ``fcn.core`` never reaches TensorFlow, Keras or another layer of the package;
- ``fcn.model`` does not import training, inference, the study or the commands;
- neither ``fcn.model`` nor ``fcn.inference`` imports the training pipeline (``fcn.training``,
  ``fcn.data.pipeline``);
- no library module imports a command (``fcn.cli``);
- no import cycle at import time, and the modules the commands start from import no TensorFlow.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fcn"
HEAVY = {"tensorflow", "keras", "tf2onnx"}
LAYERS = ("core", "data", "model", "training", "inference", "study", "cli")
TRAINING_PIPELINE = ("fcn.training", "fcn.data.pipeline")
# Modules a command imports before any work, or that must start instantly: no TensorFlow at import time.
LIGHT_MODULES = (
    "fcn",
    "fcn.core.evaluate",
    "fcn.core.images",
    "fcn.core.metrics",
    "fcn.core.palette",
    "fcn.cli.common",
    "fcn.inference.engine",
    "fcn.inference.geo",
    "fcn.training.rundir",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, *, module_level_only: bool = False) -> set[str]:
    """What ``path`` imports: ``fcn.x.y`` modules of the package, and top-level names of others."""
    tree = ast.parse(path.read_text())
    return imported_by(tree.body if module_level_only else list(ast.walk(tree)), path)


def imported_by(nodes, path: Path) -> set[str]:
    """What the import statements among ``nodes`` of ``path`` import (see :func:`imports_of`)."""
    inside = path.resolve().is_relative_to(PACKAGE.parent)
    own_name = module_name(path) if inside else ""
    package = own_name if path.name == "__init__.py" else own_name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    own = {name for name in found if name in MODULES}
    return own | {name.split(".")[0] for name in found if not name.startswith("fcn")}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def violations(rule) -> list[str]:
    found = []
    for name, path in MODULES.items():
        found += [f"{name} imports {target}" for target in sorted(imports_of(path)) if rule(name, target)]
    return found


def test_the_graph_reader_sees_function_level_and_relative_imports(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("import os\ndef f():\n    import tensorflow as tf\n    from fcn.core import palette\n")
    assert imports_of(source) == {"os", "tensorflow", "fcn.core", "fcn.core.palette"}
    assert imports_of(source, module_level_only=True) == {"os"}


def test_core_reaches_neither_tensorflow_nor_other_layers():
    def rule(name, target):
        return layer(name) == "core" and (target in HEAVY or (target.startswith("fcn.") and layer(target) != "core"))

    assert violations(rule) == []


def test_model_layer_does_not_import_training_inference_study_or_commands():
    def rule(name, target):
        return layer(name) == "model" and layer(target) in ("training", "inference", "study", "cli")

    assert violations(rule) == []


def test_model_and_inference_never_import_the_training_pipeline():
    def rule(name, target):
        return layer(name) in ("model", "inference") and target.startswith(TRAINING_PIPELINE)

    assert violations(rule) == []


def test_no_library_module_imports_a_command():
    def rule(name, target):
        return layer(name) != "cli" and layer(target) == "cli" and target != "fcn.cli.common"

    assert violations(rule) == []


def module_level_graph() -> dict[str, set[str]]:
    return {name: imports_of(path, module_level_only=True) for name, path in MODULES.items()}


def test_there_is_no_import_cycle():
    edges = module_level_graph()
    state: dict[str, str] = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(trail + [node])}"
        state[node] = "open"
        # A package imports its parent package first; that is not a cycle.
        for child in sorted(c for c in edges[node] if c in edges and not node.startswith(c + ".")):
            visit(child, trail + [node])
        state[node] = "done"

    for node in sorted(edges):
        visit(node, [])


def test_light_modules_do_not_import_tensorflow_even_indirectly():
    edges = module_level_graph()

    def reachable(node, seen):
        for child in edges[node]:
            if child in edges and child not in seen:
                seen.add(child)
                reachable(child, seen)
        return seen

    for name in LIGHT_MODULES:
        for module in {name} | reachable(name, set()):
            assert not edges[module] & HEAVY, f"{name} imports TensorFlow/Keras at import time via {module}"


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_importing_alone_works_without_tensorflow(module):
    # One process per module: one process for all would hide an import that works only after another's.
    code = f"import sys, {module}; sys.exit(int(any(m in sys.modules for m in ('tensorflow', 'keras'))))"
    assert subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, timeout=60).returncode == 0


# Third-party packages slow to import or optional: a function may import them (and the fcn modules that
# import them at import time) so that a light module stays light. Any other import goes at the top.
LAZY_ALLOWED = HEAVY | {
    "onnx",
    "onnxruntime",
    "ai_edge_litert",
    "rasterio",
    "matplotlib",
    "dask",
    "distributed",
    "pyogrio",
    "fiona",
    "shapely",
}


def heavy_at_import(module: str, edges: dict[str, set[str]], seen: frozenset = frozenset()) -> bool:
    """Whether importing ``module`` imports one of :data:`LAZY_ALLOWED` (through fcn modules or parent packages)."""
    if module not in edges:
        return module.split(".")[0] in LAZY_ALLOWED
    parents = {module.rsplit(".", depth)[0] for depth in range(1, module.count(".") + 1)}
    children = (edges[module] | parents) - seen - {module}
    return any(heavy_at_import(child, edges, seen | {module}) for child in children)


def function_level_imports(path: Path) -> list[tuple[int, set[str]]]:
    """(line, what it imports) of every import inside a function of ``path``."""
    found = []
    for function in ast.walk(ast.parse(path.read_text())):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    targets = imported_by([node], path)
                    # `from fcn.model import builders` names the submodule: the package alone does not decide.
                    found.append((node.lineno, {t for t in targets if not any(u.startswith(t + ".") for u in targets)}))
    return found


def test_the_lazy_import_rule_sees_heavy_and_light_imports(tmp_path):
    edges = module_level_graph()
    assert heavy_at_import("fcn.model.builders", edges) and heavy_at_import("rasterio", edges)
    assert not heavy_at_import("fcn.core.palette", edges) and not heavy_at_import("numpy", edges)


def test_function_level_imports_only_keep_heavy_modules_off_light_paths():
    edges = module_level_graph()
    offenders = [
        f"{name}:{line} imports {', '.join(sorted(targets))} inside a function"
        for name, path in MODULES.items()
        for line, targets in function_level_imports(path)
        if not all(heavy_at_import(target, edges) for target in targets)
    ]
    assert offenders == []
