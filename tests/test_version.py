"""``fcn.__version__`` is the installed distribution's version, which pyproject.toml sets."""

import importlib.metadata
import tomllib
from pathlib import Path

import fcn

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_comes_from_the_package_metadata_which_pyproject_sets():
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert fcn.__version__ == importlib.metadata.version("fcn") == declared
