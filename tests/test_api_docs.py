"""docs/API.md lists the public API, generated from each subpackage's ``__all__`` and the docstrings.

``python tests/test_api_docs.py`` writes the page again; the test fails while it is stale.
"""

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "docs" / "API.md"
PACKAGES = ("fcn", "fcn.core", "fcn.data", "fcn.model", "fcn.training", "fcn.inference", "fcn.study", "fcn.cli")


def source_of(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def exports(package: str) -> dict[str, str]:
    """``__all__`` of ``package``, each name with the module that defines it (a submodule: itself)."""
    tree = ast.parse(source_of(package).read_text())
    owners, lazy = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            owners.update({alias.name: node.module for alias in node.names})
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports":
            mapping = ast.literal_eval(node.args[1])
            lazy.update({name: module for module, names in mapping.items() for name in names})
    owners.update(lazy)
    literal = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__"
    ]
    names = literal[0] if literal else sorted(lazy)  # else __all__ comes from lazy_exports
    submodules = {name: f"{package}.{name}" for name in names if source_of(f"{package}.{name}").is_file()}
    return {name: owners.get(name) or submodules.get(name, package) for name in names}


def _markdown(text: str) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`").replace("|", "\\|")


def first_paragraph(docstring: str | None) -> str:
    return _markdown(" ".join((docstring or "").strip().split("\n\n")[0].split()))


def summary(module: str, name: str) -> str:
    """The first paragraph of ``name``'s docstring in ``module`` (of the module itself when it is one)."""
    tree = ast.parse(source_of(module).read_text())
    if module.rsplit(".", 1)[-1] == name:
        return first_paragraph(ast.get_docstring(tree))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return first_paragraph(ast.get_docstring(node))
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(getattr(target, "id", "") == name for target in targets):
            return f"constant: `{ast.unparse(node.value)[:60]}`"
    raise LookupError(f"{module} defines no {name}")


def api_page() -> str:
    lines = [
        "# Python API",
        "",
        "What a user may import, and rely on: each subpackage's `__all__` (`from fcn.inference import",
        "Predictor`). Anything else is internal and may change. Written by `python tests/test_api_docs.py`",
        "from the docstrings; `tests/test_api_docs.py` fails when this page is stale.",
    ]
    for package in PACKAGES:
        doc = first_paragraph(ast.get_docstring(ast.parse(source_of(package).read_text())))
        lines += ["", f"## `{package}`", "", doc, "", "| name | defined in | what |", "|---|---|---|"]
        for name, module in sorted(exports(package).items(), key=lambda item: item[0].lower()):
            lines.append(f"| `{name}` | `{module}` | {summary(module, name)} |")
    return "\n".join(lines) + "\n"


def test_the_api_page_is_current():
    assert API_PAGE.read_text() == api_page(), "docs/API.md is stale: run python tests/test_api_docs.py"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports_from_its_package(package):
    pytest.importorskip("keras")
    imported = importlib.import_module(package)
    for name, module in exports(package).items():
        if module == f"{package}.{name}":  # a submodule (the commands)
            submodule = importlib.import_module(module)
            assert getattr(imported, name) is submodule
        else:
            assert getattr(imported, name) is getattr(importlib.import_module(module), name), (package, name)


if __name__ == "__main__":
    API_PAGE.write_text(api_page())
    print(f"wrote {API_PAGE.relative_to(ROOT)}", file=sys.stderr)
