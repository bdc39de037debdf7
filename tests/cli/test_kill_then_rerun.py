"""Issue 20, kill -9 mid-write: the command is killed while its checked writer holds a temporary file,
and the next run of the same command cleans up and writes the whole file. Real processes (``slow``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcn.core.files import PAUSE_MARKER_ENV, PAUSE_WRITE_ENV
from fcn.core.mark import carries_mark
from tests.cli.test_nothing_lost import REPO, hidden, run, tile


def _kill_when_paused(argv, name: str, marker: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", PAUSE_WRITE_ENV: name, PAUSE_MARKER_ENV: str(marker)}
    process = subprocess.Popen([sys.executable, *map(str, argv)], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert process.poll() is None, "the command ended before the pause"
        assert time.monotonic() < deadline, "the pause was never reached"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_kill_9_during_predict_then_the_next_run_cleans_up(model, tmp_path, capsys):
    tile(tmp_path / "in" / "0001_sat.jpg")
    argv = ["--model", model, "--input", tmp_path / "in", "--output", tmp_path / "out", "-q"]
    _kill_when_paused([REPO / "scripts" / "predict.py", *argv], "0001_mask.png", tmp_path / "paused")
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".0001_mask.png")]  # the kill's leftover
    assert not (tmp_path / "out" / "0001_mask.png").exists()
    assert run("predict", argv, capsys) == (0, [])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0001_mask.png"]


@pytest.mark.slow
def test_kill_9_during_export_then_the_next_run_cleans_up(model, tmp_path, capsys):
    pytest.importorskip("tf2onnx")
    argv = ["--model", model, "--format", "onnx", "--output", tmp_path / "m.onnx", "--no-check", "-q"]
    _kill_when_paused([REPO / "scripts" / "export.py", *argv], "m.onnx", tmp_path / "paused")
    assert hidden(tmp_path) and not (tmp_path / "m.onnx").exists()
    code, _ = run("export", argv, capsys)
    assert code == 0 and hidden(tmp_path) == [] and carries_mark(tmp_path / "m.onnx")
