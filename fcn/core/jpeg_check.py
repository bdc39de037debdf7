"""The one damaged-JPEG check of every command: JPEGs that decode only with libjpeg's corruption warnings.

A JPEG damaged in the middle (bytes overwritten, end marker kept) still decodes: libjpeg fills what it
lost with grey or garbage and prints a warning such as ``Corrupt JPEG data: premature end of data
segment`` on file descriptor 2, naming no file. Pillow swallows the warning, so :func:`damaged_jpegs`
decodes each JPEG with a libjpeg decoder that the caller passes (TensorFlow's ``tf.io.decode_jpeg``:
training's own decoder; this module imports no TensorFlow) while file descriptor 2 goes to a temporary
file, and ties each warning to the file being decoded. Prediction from an exported model, without
TensorFlow, passes rasterio's libjpeg instead (:func:`fcn.inference.folder.gdal_decode`).

The redirection is process-wide: run the check before threads that write to stderr start. Lines that
are not the decoder's (TensorFlow's own logs) go to the log at debug level.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fcn.core.errors import InputError

logger = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8"
# absl/TensorFlow log lines ("W0000 00:00:...", "2026-01-01 12:00:00.000000: I tensorflow/...") are not the decoder's.
_TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |WARNING: All log messages)")

Decoder = Callable[[bytes], object]


def damaged_jpegs(paths: Iterable[str | os.PathLike], decode: Decoder | None) -> dict[Path, str]:
    """The JPEG files among ``paths`` that ``decode`` warns about or cannot decode, with the decoder's message.

    Files that are not JPEGs (by their first bytes) are skipped; a file that cannot be read is reported
    with the reason. ``decode`` None checks nothing (said at debug level).

    Returns:
        ``{path: message}`` for the offending files only, in the order given; the message is the decoder's
        own lines joined by ``"; "``, e.g. ``Corrupt JPEG data: premature end of data segment``.
    """
    paths = [Path(p) for p in paths]
    if decode is None:
        logger.debug("no libjpeg decoder (TensorFlow or rasterio): %d inputs not checked for damage", len(paths))
        return {}
    found: dict[Path, str] = {}
    with _captured_fd2() as read_new:
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as err:
                found[path] = f"cannot be read ({err.strerror or err})"
                continue
            if not data.startswith(JPEG_MAGIC):
                continue
            failure = ""
            try:
                decode(data)
            except Exception as err:  # the decoder's own error type (TensorFlow, rasterio)
                lines = str(err).strip().splitlines() or [err.__class__.__name__]
                failure = f"cannot be decoded ({lines[-1][:200]})"
            lines = list(dict.fromkeys(line for line in read_new() if line))
            if lines or failure:
                found[path] = "; ".join(lines + ([failure] if failure and not lines else []))
    return found


def damaged_jpeg_error(path: Path, message: str) -> str:
    """The one line naming a damaged (or unreadable) JPEG."""
    if message.startswith("cannot be read"):
        return f"{path}: {message}"
    return f"{path}: damaged JPEG ({message}); re-download or re-export it"


def refuse_damaged_jpegs(paths: Iterable[str | os.PathLike], decode: Decoder | None) -> None:
    """Refuse the first damaged JPEG among ``paths`` (up-front checks, where one bad file stops the command).

    Raises:
        InputError: one line naming the first such file, its warning, and how many more there are.
    """
    damaged = damaged_jpegs(paths, decode)
    if damaged:
        (first, message), others = next(iter(damaged.items())), len(damaged) - 1
        more = f"; {others} more: {', '.join(p.name for p in list(damaged)[1:6])}" if others else ""
        raise InputError(damaged_jpeg_error(first, message) + more)


@contextmanager
def _captured_fd2() -> Iterator[Callable[[], list[str]]]:
    """Send file descriptor 2 to a temporary file; yields a function returning the decoder lines written since its last call.

    Other lines (TensorFlow's own logs) go to the log at debug level when the block ends.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    others: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        position = 0

        def read_new() -> list[str]:
            nonlocal position
            sink.seek(position)
            text = sink.read().decode("utf-8", "replace")
            position = sink.tell()
            decoder = []
            for line in text.splitlines():
                (others if _TF_LOG_LINE.match(line) else decoder).append(line.strip())
            return decoder

        try:
            yield read_new
        finally:
            sys.stderr.flush()
            read_new()
            os.dup2(saved, 2)
            os.close(saved)
    for line in others:
        logger.debug("%s", line)
