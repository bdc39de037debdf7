"""Every docs page, the README and pyproject's comments name only paths and modules that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
PATH = re.compile(r"(?<![\w./-])((?:fcn|bench|scripts|tests|docs)/[\w./-]*\w)")
MODULE = re.compile(r"(?<![\w./-])(fcn(?:\.\w+)+)")
DEFINED = (
    r"^(?:def|class|async def) {0}\b|^{0}\s*[:=]|^\s*(?:from \S+ )?import .*\b{0}\b|^\s*\"{0}\",$"  # or in __all__
)


def pyproject_comments() -> str:
    return "\n".join(
        line.split("#", 1)[1] for line in (ROOT / "pyproject.toml").read_text().splitlines() if "#" in line
    )


def texts():
    yield from ((page.relative_to(ROOT).as_posix(), page.read_text()) for page in PAGES)
    yield "pyproject.toml comments", pyproject_comments()


def missing_paths(text: str) -> list[str]:
    """Repository paths named in ``text`` that do not exist (globs and placeholders in capitals are skipped)."""
    names = {match.rstrip(".") for match in PATH.findall(text)}
    return sorted(
        name
        for name in names
        if not any(c in name for c in "*<>") and not name.isupper() and not (ROOT / name).exists()
    )


def missing_modules(text: str) -> list[str]:
    """``fcn.x.y`` names in ``text`` that are neither a module nor a name defined in one."""
    return sorted(name for name in set(MODULE.findall(text)) if not _resolves(name))


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if source.is_file():
            rest = parts[cut:]
            return not rest or re.search(DEFINED.format(re.escape(rest[0])), source.read_text(), re.M) is not None
    return False


def test_the_checks_see_a_missing_path_and_module():
    assert missing_paths("see `fcn/weights.py`, fcn/model/weights.py and DATA_DIR") == ["fcn/weights.py"]
    assert missing_modules("fcn.runtime, fcn.model.runtime.make_strategy, fcn.model.runtime.nothing") == [
        "fcn.model.runtime.nothing",
        "fcn.runtime",
    ]


@pytest.mark.parametrize("name, text", list(texts()), ids=[name for name, _ in texts()])
def test_docs_name_only_what_exists(name, text):
    assert missing_paths(text) == [] and missing_modules(text) == []
