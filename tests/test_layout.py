"""The size rules of docs/ARCHITECTURE.md: modules of at most 400 lines, functions of at most 60.

They hold for the package, the scripts of ``bench/`` and ``scripts/``, and the tests. A module's lines are
its raw lines; a function's leave out its docstring, and the declarative argparse tables
(``get_args_parser``) do not count.
Run ``python tests/test_layout.py`` for the longest modules and functions.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcn"
SCRIPT_FOLDERS = (ROOT / "bench", ROOT / "scripts")  # their *.py only: no subfolders
TESTS = ROOT / "tests"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
PARSER_TABLES = {"get_args_parser"}


def _docstring_lines(node) -> int:
    body = getattr(node, "body", None)
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def module_lines(path: Path) -> int:
    """Raw lines of a module (docstring, comments and blank lines included)."""
    return len(path.read_text().splitlines())


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines without its docstring) of every function and method of a module."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                found.append((name, child.end_lineno - child.lineno + 1 - _docstring_lines(child)))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(path.read_text()), "")
    return found


def modules() -> list[Path]:
    """Every module the rules hold for: the package's, the scripts', then the tests'."""
    scripts = [path for folder in SCRIPT_FOLDERS for path in sorted(folder.glob("*.py"))]
    return sorted(PACKAGE.rglob("*.py")) + scripts + sorted(TESTS.rglob("*.py"))


def relative_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_modules_count_raw_lines_and_functions_skip_docstrings(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('"""Doc\n\nmore."""\n\n\ndef f():\n    """Doc\n    doc."""\n    return 1\n')
    assert module_lines(source) == 9
    assert function_lengths(source) == [("f", 2)]


def test_the_rules_cover_the_package_the_scripts_and_the_tests():
    covered = {relative_name(p) for p in modules()}
    for expected in ("fcn/cli/train.py", "bench/cv.py", "scripts/train.py", "tests/cli/test_nothing_lost.py"):
        assert expected in covered, f"{expected} is not measured by the size rules"


def test_no_module_is_over_the_limit():
    too_long = {relative_name(p): lines for p in modules() if (lines := module_lines(p)) > MAX_MODULE_LINES}
    assert too_long == {}, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_no_function_is_over_the_limit():
    too_long = {}
    for path in modules():
        for function, lines in function_lengths(path):
            if lines > MAX_FUNCTION_LINES and function.split(".")[-1] not in PARSER_TABLES:
                too_long[f"{relative_name(path)}:{function}"] = lines
    assert too_long == {}, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


if __name__ == "__main__":
    sizes = sorted(((module_lines(p), relative_name(p)) for p in modules()), reverse=True)
    functions = sorted(
        ((n, f"{relative_name(p)}:{f}") for p in modules() for f, n in function_lengths(p)), reverse=True
    )
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print("longest modules:", *(f"  {n:4d}  {module}" for n, module in sizes[:limit]), sep="\n")
    print("longest functions:", *(f"  {n:4d}  {function}" for n, function in functions[:limit]), sep="\n")
