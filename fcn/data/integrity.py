"""Finding training JPEGs that decode only with the decoder's corruption warnings.

A JPEG damaged in the middle (bytes overwritten, end marker kept) still decodes: libjpeg fills what it
lost with grey and prints a warning such as ``Corrupt JPEG data: premature end of data segment`` on
file descriptor 2, naming no file, and training learns the grey. Pillow swallows the warning, so the
check decodes every file with TensorFlow's decoder (the one training uses) while file descriptor 2
goes to a temporary file, and ties each warning to the file being decoded.

:func:`jpeg_decoder_warnings` is meant for an up-front check before training (nothing else should
write to stderr meanwhile: the redirection is process-wide; lines that are not the decoder's are
written back to stderr afterwards).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

JPEG_MAGIC = b"\xff\xd8"
# absl/TensorFlow log lines ("W0000 00:00:...", "2026-01-01 12:00:00.000000: I tensorflow/...") are not the decoder's.
_TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )")


def jpeg_decoder_warnings(paths: Iterable[str | os.PathLike]) -> dict[Path, str]:
    """The JPEG files among ``paths`` that the decoder warns about or cannot decode, with its message.

    Files that are not JPEGs (by their first bytes) are skipped; a file that cannot be read is
    reported with the reason.

    Args:
        paths: image files (e.g. the training tiles).

    Returns:
        ``{path: message}`` for the offending files only (empty when all decode cleanly); the message is
        the decoder's own lines joined by ``"; "``, e.g. ``Corrupt JPEG data: premature end of data segment``.
    """
    import tensorflow as tf

    found: dict[Path, str] = {}
    with _captured_fd2() as read_new:
        for path in map(Path, paths):
            try:
                data = path.read_bytes()
            except OSError as err:
                found[path] = f"cannot be read ({err.strerror or err})"
                continue
            if not data.startswith(JPEG_MAGIC):
                continue
            failure = ""
            try:
                tf.io.decode_jpeg(data, channels=3)
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
                failure = f"cannot be decoded ({str(err).strip().splitlines()[-1][:200]})"
            lines = list(dict.fromkeys(line for line in read_new() if line))
            if lines or failure:
                found[path] = "; ".join(lines + ([failure] if failure and not lines else []))
    return found


@contextmanager
def _captured_fd2() -> Iterator[Callable[[], list[str]]]:
    """Send file descriptor 2 to a temporary file; yields a function returning the decoder lines written since its last call.

    Other lines (TensorFlow's own logs) are written back to the real stderr when the block ends.
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
    if others:
        print("\n".join(others), file=sys.stderr, flush=True)
