"""Input folders: list a folder's files and name the entries that cannot be read (dangling links, link
loops, unreadable entries) instead of skipping them silently. No TensorFlow here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fcn.core.errors import InputError


@dataclass
class FolderScan:
    """A folder's files with the wanted suffixes, and one line per entry that cannot be read."""

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def _readable_folder(folder: str | os.PathLike, option: str = "") -> list[os.DirEntry]:
    """The entries of ``folder``; one line when it is missing, not a folder or cannot be listed."""
    folder = Path(folder)
    label = f"{option} " if option else ""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        raise InputError(f"{folder}: {label}no such folder") from None
    except NotADirectoryError:
        raise InputError(f"{folder}: {label}is not a folder") from None
    except OSError as err:
        raise InputError(f"{folder}: {label}folder cannot be read ({err.strerror or err})") from None


def scan_folder(
    folder: str | os.PathLike, suffixes: Sequence[str], *, skip: Callable[[Path], bool] | None = None
) -> FolderScan:
    """The files of ``folder`` whose suffix is one of ``suffixes`` (any case), sorted by name.

    Entries with a wanted suffix that are not readable files are named in ``problems`` instead of
    being skipped silently: links that do not resolve, link loops, files that cannot be opened.
    Hidden files (temporary files of killed writes among them) are ignored.

    Raises:
        InputError: the folder itself is missing or cannot be listed.
    """
    scan = FolderScan()
    wanted = tuple(s.lower() for s in suffixes)
    for entry in sorted(_readable_folder(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith(".") or path.suffix.lower() not in wanted or (skip is not None and skip(path)):
            continue
        problem = _entry_problem(path)
        if problem is None:
            scan.files.append(path)
        elif problem:
            scan.problems.append((path, f"{path}: {problem}"))
    return scan


def _entry_problem(path: Path) -> str | None:
    """None for a readable file, '' for a folder (not an input), else why it cannot be read."""
    try:
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except FileNotFoundError:
                return f"link to {os.readlink(path)}, which does not exist"
            except RuntimeError:
                return "link loop (the link points back to itself)"
            if target.is_dir():
                return ""
        elif path.is_dir():
            return ""
        if not path.is_file():
            return "not a regular file"
        with open(path, "rb"):
            return None
    except OSError as err:
        if err.errno == 40:  # ELOOP
            return "link loop (the link points back to itself)"
        return f"cannot be read ({err.strerror or err})"
