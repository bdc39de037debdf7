"""What every command shares: the one-line-error parser, shared options and ``type=`` checks, logging set-up
(:func:`parse_command_line`) and ``run_cli``.

A bad flag is refused before any work (and before TensorFlow is imported) with the same one line as
any other user mistake.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence

from tqdm import tqdm

from fcn.core.errors import EXIT_USER_ERROR, InputError
from fcn.core.lazy import quiet_tensorflow


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (an :class:`InputError`), not usage + error."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")


class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (a test's capture, a redirection), clearing tqdm bars first."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property always reads sys.stderr
        pass

    def emit(self, record: logging.LogRecord) -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            super().emit(record)


def add_overwrite_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: let the command replace ``what`` when fcn did not write it (refused by default)."""
    parser.add_argument(
        "--overwrite", action="store_true", help=f"replace {what} that fcn did not write (refused by default)"
    )


def add_workers_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--workers N``: how many threads or processes a command runs in parallel (None: its own default)."""
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N", help=help)


def add_message_options(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose``, meaning the same in every command (``args.log_level``: -1, 0, 1).

    ``-q``: only errors on stderr (no notes, warnings or progress bar; results on stdout stay).
    ``-v``: debugging details too.
    """
    messages = parser.add_mutually_exclusive_group()
    messages.add_argument(
        "-q",
        "--quiet",
        dest="log_level",
        action="store_const",
        const=-1,
        default=0,
        help="only errors on stderr: no notes, warnings or progress (results on stdout stay)",
    )
    messages.add_argument(
        "-v", "--verbose", dest="log_level", action="store_const", const=1, help="debugging details too"
    )


def add_progress_option(parser: argparse.ArgumentParser, choices: Sequence[str] = ("bar", "none"), extra: str = ""):
    """``--progress``: the progress display, the same flag in every command that shows one (off with ``-q``)."""
    parser.add_argument(
        "--progress",
        choices=choices,
        default=None,
        help=f"progress display: bar (default), none{extra}; -q turns it off",
    )


def shows_progress(args: argparse.Namespace) -> bool:
    """Whether the command shows its progress bar: not with ``-q`` or ``--progress none``."""
    return getattr(args, "log_level", 0) >= 0 and getattr(args, "progress", None) in (None, "bar")


# Libraries whose log lines repeat, in their own words, what fcn's one error line says (GDAL/libtiff through
# rasterio: "_tiffWriteProc: No space left on device."): shown with -v only.
LIBRARY_LOGGERS = ("rasterio",)


def _setup_logging(verbosity: int = 0) -> None:
    """Messages of ``fcn`` go to stderr as bare lines: -1 (``-q``) errors only, 0 notes, 1 (``-v``) debug.

    The :data:`LIBRARY_LOGGERS` show their lines with ``-v`` only (as debugging details).
    """
    level = {-1: logging.ERROR, 0: logging.INFO}.get(verbosity, logging.DEBUG if verbosity > 0 else logging.ERROR)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.fcn_cli = True
    for name in ("fcn", *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "fcn_cli", False):
                logger.removeHandler(old)
        logger.addHandler(handler if name == "fcn" or verbosity > 0 else _NULL_HANDLER)
        logger.setLevel(level if name == "fcn" else logging.WARNING)
        logger.propagate = False


class _NullHandler(logging.NullHandler):
    fcn_cli = True


_NULL_HANDLER = _NullHandler()


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """A command's first step: parse ``argv``, then set up logging by its ``-q``/``-v``."""
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "log_level", 0))
    return args


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main(argv)``; an :class:`InputError` becomes one line on stderr and exit 2.

    Args:
        main: the command; returns an exit code or None for 0.
        argv: arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit code.
    """
    quiet_tensorflow()
    if not any(getattr(h, "fcn_cli", False) for h in logging.getLogger("fcn").handlers):
        _setup_logging(0)
    try:
        return int(main(argv) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------- argparse type= checks


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _checked(kind: type, accept: Callable, requirement: str, name: str) -> Callable[[str], int | float]:
    """An argparse ``type=`` function: parse ``kind`` and refuse values ``accept`` rejects."""

    def check(text: str):
        value = _number(text, kind)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {value}")
        return value

    check.__name__ = name
    check.__doc__ = f"A {'whole number' if kind is int else 'finite number'} that is {requirement}."
    return check


positive_int = _checked(int, lambda v: v >= 1, "at least 1", "positive_int")
non_negative_int = _checked(int, lambda v: v >= 0, "at least 0", "non_negative_int")
positive_float = _checked(float, lambda v: v > 0, "positive", "positive_float")
non_negative_float = _checked(float, lambda v: v >= 0, "at least 0", "non_negative_float")
fraction = _checked(float, lambda v: 0 <= v < 1, "in [0, 1)", "fraction")


def multiple_of_32(text: str) -> int:
    """A positive whole number divisible by 32 (five 2x poolings)."""
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(
            f"must be a multiple of 32, got {value} (try {max(32, round(value / 32) * 32)})"
        )
    return value


def band_numbers(text: str) -> tuple[int, ...]:
    """Raster bands as ``R,G,B`` (three numbers) or one grey band, counted from 1: ``3,2,1``, ``4``."""
    try:
        bands = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes band numbers such as 1,2,3, got {text!r}") from None
    if len(bands) not in (1, 3) or min(bands) < 1:
        raise argparse.ArgumentTypeError(f"takes 3 band numbers (R,G,B) or 1 (grey), counted from 1, got {text!r}")
    return bands
