"""C libraries' lines on file descriptor 2 (libtiff's ``_tiffWriteProc: No space left on device.``), sent to the log.

Some libraries report a failure on stderr from C before the Python call raises; the command's own
one-line error already says it. :func:`c_stderr_to_log` redirects file descriptor 2 around such a call
and logs what was written there at debug level (shown with ``-v``). The redirection is process-wide:
one block at a time (a lock), and only around short calls.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)
_LOCK = threading.Lock()


@contextmanager
def c_stderr_to_log(what: str = "") -> Iterator[None]:
    """Inside the block, what C code writes on file descriptor 2 goes to the log (debug), prefixed by ``what``."""
    with _LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    logger.debug("%s%s", f"{what}: " if what else "", line.strip())
