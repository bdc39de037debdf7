"""User-facing errors: one ``error:`` line naming the file or flag, and exit code 2."""

from __future__ import annotations

EXIT_USER_ERROR = 2


class InputError(Exception):
    """A user mistake (bad path, corrupt file, wrong size...). The message names the file."""


def first_line(err: BaseException, default: str = "") -> str:
    """The first line of an exception's message (``default`` when it has none), for one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0] if text else default
