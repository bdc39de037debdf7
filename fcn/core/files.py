"""Writing files so that a reader (or a crash) never sees half of one: temp file + atomic rename."""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".tmp-"
# Crash tests: FCN_TEST_PAUSE_WRITE=NAME[@N] freezes the process at its N-th write of a file named NAME,
# after the temporary file is written and before it replaces the target, and creates the file
# FCN_TEST_PAUSE_MARKER, so that a test can kill -9 it at exactly that moment.
PAUSE_WRITE_ENV, PAUSE_MARKER_ENV = "FCN_TEST_PAUSE_WRITE", "FCN_TEST_PAUSE_MARKER"
_writes_by_name: Counter = Counter()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so probing it later could race with other threads.
_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it atomically when the block succeeds.

    The temporary file keeps the target's suffixes (``.keras``, ``.weights.h5``, ``.png``), so
    writers that choose the format by name work, gets the mode a new file would get, and is named
    ``.<name>.tmp-XXXX<suffixes>`` so that :func:`remove_temp_files` can find it after a crash. On an
    exception (or a kill) the target is untouched.

    Args:
        path: the file to write.

    Yields:
        The temporary path to write to.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files 0600
        _pause_if_asked(path.name)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _pause_if_asked(name: str) -> None:
    wanted = os.environ.get(PAUSE_WRITE_ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("@")
    if name != target:
        return
    _writes_by_name[name] += 1
    if _writes_by_name[name] == int(nth or 1):
        Path(os.environ[PAUSE_MARKER_ENV]).write_text(f"{os.getpid()}\n")
        while True:
            time.sleep(1)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_temp_files(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left for ``folder/name`` when killed.

    Returns:
        The paths removed.
    """
    removed = []
    for stale in Path(folder).glob(f".{name}{TEMP_MARK}*"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
