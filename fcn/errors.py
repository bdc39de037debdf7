"""User-facing errors and the wrapper that turns them into one line and exit code 2."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

EXIT_USER_ERROR = 2


class InputError(Exception):
    """A user mistake (bad path, corrupt file, wrong size...). The message names the file."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main(argv)``; an :class:`InputError` becomes one line on stderr and exit 2.

    Args:
        main: the command; returns an exit code or None for 0.
        argv: arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit code.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides our output
    try:
        return int(main(argv) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
