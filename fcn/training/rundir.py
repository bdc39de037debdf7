"""The run directory a training writes: created safely, locked while in use, tidied after crashes.

:class:`RunDirectory` is what ``fcn.training.trainer`` enters before it builds anything:

* the path is checked without creating anything (a parent that is a file, or a folder that cannot
  be written, is one line naming it);
* a directory that holds a completed epoch is refused for a new run (``--resume`` continues it);
  one whose first epoch never completed (a crash) is simply started again;
* an OS lock (``flock`` on the run's lock file, removed on exit) refuses a second training into the
  same directory while the first runs, whatever the timing; the lock dies with the process, so a
  kill never leaves it stuck (a stale lock file is just reused);
* temporary files that a kill left behind are deleted;
* if the run fails before its first epoch completes, a directory it created is removed again.

The files' names are :class:`fcn.model.runfiles.RunFiles`'s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import remove_temp_files
from fcn.model.runfiles import RunFiles

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None


def _explain(err: OSError) -> str:
    return err.strerror or str(err)


def _check_creatable(path: Path) -> None:
    """Refuse, with one line naming it, a directory path that cannot be created or written.

    Raises:
        InputError: a parent is a regular file, or the nearest existing folder is not writable.
    """
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{path}: exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{path}: directory is not writable")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{path}: cannot be created, {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot be created, {ancestor} is not writable")


def _check_new_run_folder(path: Path) -> None:
    """Refuse, in one line, an existing folder that is neither empty nor a run directory of fcn-train.

    A run directory has a run configuration (:meth:`RunFiles.is_run`); hidden files (the lock,
    temporary files of a killed write) do not count. Anything else there was not written by fcn for
    a run and would be replaced by the run's files.

    Raises:
        InputError: the folder holds files and no run configuration.
    """
    try:
        entries = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    except OSError:
        return  # not a folder yet (_check_creatable says why if it cannot become one)
    if not entries or RunFiles(path).is_run():
        return
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise InputError(
        f"{path}: not empty ({shown}) and not a run directory of fcn-train, whose files would replace these; "
        "choose a new or empty --out"
    )


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (None if ``path`` exists)."""
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


class RunDirectory:
    """Context manager that owns a run directory for the duration of a training.

    Args:
        path: the run directory.
        resume: the run continues an existing one (``--resume``).
        chief: False for non-chief workers of a multi-worker run, which neither create nor lock it.

    Raises:
        InputError: (on enter) the directory cannot be created or written, holds a run already
            (new runs), or is in use by another training.
    """

    def __init__(self, path: str | os.PathLike, *, resume: bool = False, chief: bool = True):
        self.path = Path(path)
        self.files = RunFiles(self.path)
        self.resume = resume
        self.chief = chief
        self._created: Path | None = None  # the topmost folder this run created
        self._lock_handle = None

    def __enter__(self) -> RunDirectory:
        if not self.chief:
            return self
        _check_creatable(self.path)
        if not self.resume:
            _check_new_run_folder(self.path)
        if not self.resume and self.files.has_completed_epoch():
            raise InputError(
                f"{self.path}: already holds a run; continue it with --resume {self.path}, or choose another --out"
            )
        self._created = _first_missing(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as err:
            self._remove_if_created()
            raise InputError(f"{self.path}: cannot create or lock the run directory ({_explain(err)})") from None
        except InputError:
            self._remove_if_created()
            raise
        remove_temp_files(self.path, recursive=True)  # of writes a kill interrupted
        if not self.resume and self.files.config_path.exists():
            self.files.clear_partial_run()
        return self

    def __exit__(self, exc_type, exc, traceback):
        if self.chief:
            if exc_type is not None and not self.files.has_completed_epoch():
                self._remove_if_created()
            self._unlock()
        return False

    def _lock(self) -> None:
        if fcntl is None:
            return
        handle = open(self.files.lock_path, "a+")  # noqa: SIM115 (held open: the lock lives with it)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise InputError(
                f"{self.path}: in use by another training (pid {owner}); wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle

    def _unlock(self) -> None:
        if self._lock_handle is not None:
            # Unlinked while still locked: a process that opened it meanwhile fails its non-blocking lock.
            self.files.lock_path.unlink(missing_ok=True)
            self._lock_handle.close()  # closing releases the flock
            self._lock_handle = None

    def _remove_if_created(self) -> None:
        if self._created is not None:
            self._unlock()
            shutil.rmtree(self._created, ignore_errors=True)
            self._created = None
