"""The one writer of every output: temp file beside the target, fsync, check, rename.

A reader (or a crash, or a full disk) never sees half of a file under its final name:

* :func:`atomic_path` yields a temporary path beside the target; when the block succeeds the file is
  flushed to disk (fsync), checked (its size, and whatever ``verify`` checks) and renamed over the
  target. Any failure removes the temporary file and leaves the target as it was.
* :func:`write_bytes_atomic` / :func:`write_text_atomic` write bytes the caller holds, through one
  low-level loop (:func:`_write_chunk`) that a test can make fail like a full disk.
* Failures are :class:`WriteError` (one line naming the target; also an ``OSError``), and a full disk or
  quota is :class:`DiskFullError`, so that a command stops at the first one instead of failing every
  remaining input.
* :data:`MARK` is the project's signature, carried inside what it writes (PNG text chunk, JPEG comment,
  TIFF software tag, ONNX metadata, JSON sidecar): :mod:`fcn.core.mark` refuses to replace files
  without it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from fcn import __version__
from fcn.core.errors import InputError

TEMP_MARK = ".tmp-"
MARK = "fcn"  # first word of the software tag / comment / text chunk of every file the project writes
# Crash tests: FCN_TEST_PAUSE_WRITE=NAME[@N] freezes the process at its N-th write of a file named NAME,
# after the temporary file is written and before it replaces the target, and creates the file
# FCN_TEST_PAUSE_MARKER, so that a test can kill -9 it at exactly that moment.
PAUSE_WRITE_ENV, PAUSE_MARKER_ENV = "FCN_TEST_PAUSE_WRITE", "FCN_TEST_PAUSE_MARKER"
_writes_by_name: Counter = Counter()
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class WriteError(InputError, OSError):
    """An output could not be written; the message (one line) names the target.

    Also an ``OSError``, so that code catching ``OSError`` around a write still catches it.
    """

    def __init__(self, path: str | os.PathLike, reason: str, code: int | None = None):
        super().__init__(f"{path}: cannot write ({reason})")
        self.errno, self.strerror, self.filename = code, reason, str(path)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):  # picklable across a process pool, whatever the constructor takes
        error = WriteError.__new__(type(self))
        return _rebuilt, (error.__class__, self.args[0], self.strerror, self.errno, self.filename)


def _rebuilt(kind: type, message: str, reason: str | None, code: int | None, filename: str | None) -> WriteError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.errno, error.strerror, error.filename = code, reason, filename
    return error


class DiskFullError(WriteError):
    """No space (or quota) left where an output goes: every later write would fail the same way."""


def write_error(path: str | os.PathLike, err: BaseException) -> WriteError:
    """The :class:`WriteError` (or :class:`DiskFullError`) for ``err`` raised while writing ``path``."""
    if isinstance(err, WriteError):
        return err
    code = getattr(err, "errno", None)
    text = str(err).strip()
    reason = getattr(err, "strerror", None) or (text.splitlines()[0] if text else err.__class__.__name__)
    kind = DiskFullError if code in DISK_FULL_ERRNOS else WriteError
    return kind(path, reason, code)


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the quota) is full."""
    return isinstance(err, DiskFullError) or getattr(err, "errno", None) in DISK_FULL_ERRNOS


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so probing it later could race with other threads.
_UMASK = _read_umask()


def sync_to_disk(path: Path) -> None:
    """fsync a file, or every file of a folder (a SavedModel), so that a rename publishes whole files."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and not child.is_symlink():
                sync_to_disk(child)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_path(
    path: str | os.PathLike,
    *,
    size: int | None = None,
    verify: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it, checked, when the block succeeds.

    The temporary file keeps the target's suffixes (``.keras``, ``.weights.h5``, ``.png``), so
    writers that choose the format by name work, gets the mode a new file would get, and is named
    ``.<name>.tmp-XXXX<suffixes>`` so that :func:`remove_temp_files` can find it after a crash. When the
    block succeeds the file is synced to disk, its size compared with ``size`` (when given) and
    ``verify(tmp)`` run (when given; it raises on a bad file), then it is renamed over ``path``. On any
    failure (or a kill) the target is untouched and the temporary file removed.

    Args:
        path: the file to write.
        size: the number of bytes the file must have (None: not checked).
        verify: a check of the written temporary file.

    Yields:
        The temporary path to write to.

    Raises:
        WriteError: the file cannot be created, synced, checked or renamed (:class:`DiskFullError`
            when the disk is full, also when the block itself hits a full disk).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix="".join(path.suffixes), dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise write_error(path, err) from None
    tmp = Path(tmp)
    try:
        try:
            yield tmp
        except OSError as err:
            if is_disk_full(err):
                raise write_error(path, err) from None
            raise
        try:
            sync_to_disk(tmp)
            if size is not None and not tmp.is_dir():
                on_disk = tmp.stat().st_size
                if on_disk != size:
                    raise WriteError(path, f"{on_disk} of {size} bytes reached the disk")
            if verify is not None:
                verify(tmp)
            if not tmp.is_dir():
                os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files 0600
            _pause_if_asked(path.name)
            os.replace(tmp, path)
        except OSError as err:
            raise write_error(path, err) from None
        _fsync_folder(path.parent)
    finally:
        _remove_quietly(tmp)


def _remove_quietly(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


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


def _write_chunk(fd: int, data: memoryview) -> int:
    """One ``os.write``: the single low-level write of the checked writer (tests replace it)."""
    return os.write(fd, data)


def _write_all(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` (created or truncated) through :func:`_write_chunk`; raises on a short write."""
    view = memoryview(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while view:
            written = _write_chunk(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
    finally:
        os.close(fd)


def _same_ends(data: bytes, ends: int = 64) -> Callable[[Path], None]:
    """A ``verify`` that re-reads the first and last bytes of the file and compares them with ``data``."""

    def verify(tmp: Path) -> None:
        with open(tmp, "rb") as handle:
            head = handle.read(ends)
            handle.seek(max(0, len(data) - ends))
            tail = handle.read(ends)
        if head != data[:ends] or tail != data[-ends:]:
            raise OSError(errno.EIO, "the bytes on disk differ from the bytes written")

    return verify


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` atomically and checked (size, first and last bytes re-read) to ``path``.

    Raises:
        WriteError: see :func:`atomic_path`.
    """
    data = bytes(data)
    with atomic_path(path, size=len(data), verify=_same_ends(data)) as tmp:
        _write_all(tmp, data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically and checked (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def remove_temp_files(
    folder: str | os.PathLike, names: Collection[str] | None = None, *, recursive: bool = False
) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left in ``folder`` when a write was killed.

    Args:
        folder: where the outputs are.
        names: the targets' file names whose temporary files go (None: every target's). Another
            process writing other names into the same folder keeps its own.
        recursive: also in the folders below ``folder``.

    Returns:
        The paths removed, sorted.
    """
    try:
        candidates = Path(folder).rglob(f".*{TEMP_MARK}*") if recursive else Path(folder).glob(f".*{TEMP_MARK}*")
        stale = sorted(p for p in candidates if p.is_file())
    except OSError:
        return []
    if names is not None:
        stale = [p for p in stale if p.name[1 : p.name.index(TEMP_MARK)] in names]
    for path in stale:
        _remove_quietly(path)
    return stale


# The kind word of the files fcn writes as data, not as a result (the demo's tiles and ground truth,
# prepare_deepglobe's): ``fcn <version> dataset``. A mark without it (every mark before it existed
# too) is a result, which a later run may replace.
DATASET_KIND = "dataset"


def project_signature(kind: str | None = None) -> str:
    """The software tag written into every output: ``fcn <version>``, then ``kind`` (``dataset``) or else
    the :func:`signature_note` in force."""
    if kind is not None:
        return f"{MARK} {__version__} {kind}"
    note = f" {_signature_notes[-1]}" if _signature_notes else ""
    return f"{MARK} {__version__}{note}"


def signature_kind(value) -> str | None:
    """The kind word of a mark (``dataset``), None for a result's mark or a value that is no mark."""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not is_signature(value):
        return None
    words = value.split(" ")
    return DATASET_KIND if len(words) > 2 and words[2] == DATASET_KIND else None


# Process-wide, not a context variable: the thread pools that encode and write outputs must see it too.
_signature_notes: list[str] = []


@contextmanager
def signature_note(note: str) -> Iterator[None]:
    """Inside the block, every output's mark also says ``note`` (e.g. which model and settings made it)."""
    _signature_notes.append(note)
    try:
        yield
    finally:
        _signature_notes.remove(note)


def is_signature(value) -> bool:
    """Whether a software tag / comment / text value is the project's (:func:`project_signature`)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return isinstance(value, str) and (value == MARK or value.startswith(f"{MARK} "))


def remove_temp_files_of(targets) -> list[Path]:
    """:func:`remove_temp_files` of exactly these target files (one listing per folder)."""
    by_folder: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        by_folder.setdefault(target.parent, set()).add(target.name)
    return [path for folder, names in by_folder.items() for path in remove_temp_files(folder, names)]


def missing_folders(folder: str | os.PathLike) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first: what ``mkdir(parents=True)`` creates."""
    missing, folder = [], Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_if_empty(folders) -> None:
    """Remove the folders (deepest first) that are empty: what a failed command created and did not use."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            continue  # not empty (or gone): its parents are not empty either, and rmdir leaves them
