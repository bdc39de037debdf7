"""Lines C libraries write on file descriptor 2 around a failing write (libtiff on a full disk) go to the log."""

import os

from fcn.core import stderr
from fcn.core.stderr import c_stderr_to_log


def test_c_lines_go_to_the_debug_log_not_the_terminal(capfd, monkeypatch):
    logged = []
    monkeypatch.setattr(stderr.logger, "debug", lambda text, *args: logged.append(text % args))
    with c_stderr_to_log("m.tif"):
        os.write(2, b"_tiffWriteProc: No space left on device.\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # fd 2 is back, and nothing leaked before it
    assert logged == ["m.tif: _tiffWriteProc: No space left on device."]
