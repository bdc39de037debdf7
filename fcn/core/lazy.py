"""Acting on a third-party import without triggering it.

``import fcn`` must stay instant (the metric tool never loads TensorFlow), yet a user who then loads
a checkpoint with plain ``keras.saving.load_model`` needs fcn's custom layers registered with Keras,
and a command line wants TensorFlow's start-up lines (printed by its C++ runtime straight to file
descriptor 2, before any logging setting applies) kept off the terminal. Both are done when, and if,
the module is first imported. Python has no post-import hook, so :func:`when_imported` wraps the
module's loader through a one-shot ``sys.meta_path`` finder.

The subpackages name their public API in ``__all__`` and load each name from its module on first
use (:func:`lazy_exports`), so that ``from fcn.inference import Predictor`` costs no more than
importing the module that defines it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager


class _OneShotFinder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, around: Callable[[], ContextManager], after: Callable[[], None] | None):
        self.name, self.around, self.after = name, around, after

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            with self.around():
                execute(module)
            if self.after is not None:
                self.after()

        spec.loader.exec_module = exec_module
        return spec


@contextmanager
def _nothing():
    yield


def when_imported(
    name: str, *, around: Callable[[], ContextManager] = _nothing, after: Callable[[], None] | None = None
) -> None:
    """Run ``after()`` once top-level module ``name`` is imported (now if it already is), and execute
    its import inside the context ``around()``.
    """
    if name in sys.modules:
        if after is not None:
            after()
        return
    if not any(isinstance(f, _OneShotFinder) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _OneShotFinder(name, around, after))


@contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up lines and info/warning logs off stderr (for the command lines)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    when_imported("tensorflow", around=_stderr_silenced)


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[list[str], Callable, Callable]:
    """The ``__all__``, ``__getattr__`` and ``__dir__`` of a package whose public names load from their modules
    on first use.

    Args:
        package: the package's ``__name__``.
        exports: module name -> the names it gives the package's API.
    """
    owners = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(owners[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(owners))

    return sorted(owners), __getattr__, __dir__
