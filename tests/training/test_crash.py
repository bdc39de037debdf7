"""kill -9 at chosen moments of a tiny training run, then start it again or resume it.

The process is frozen at exactly the moment under test by ``FCN_TEST_PAUSE_WRITE`` (see fcn.core.files):
after the temporary file of a write is complete and before it replaces the target. Guarantees
checked after each kill and after the run is completed:

* ``last.keras`` is loadable or absent (absent: the original command simply starts again);
* at most the epoch in progress is lost, and no checkpoint is;
* the finished run has ``best.keras`` equal to its best history row, every epoch exactly once in
  ``history.csv``, optimizer iterations = epochs x steps, and no temporary or lock files left.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from fcn.core.files import PAUSE_MARKER_ENV, PAUSE_WRITE_ENV, TEMP_MARK  # noqa: E402
from fcn.model.checkpoints import read_checkpoint_state  # noqa: E402
from helpers import tiny_train_args  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EPOCHS, STEPS_PER_EPOCH = 3, 2  # 8 tiles, batch 4

# The kills, in order, one per process: (moment, file write to freeze at, epoch in progress then).
# Each process after the first is the command a user would run next; the pause counts per process.
KILLS = [
    ("first last.keras write", "last.keras@1", 1),
    ("first best.keras write", "best.keras@1", 1),
    ("during epoch 2 (its validation)", "epoch_002.png@1", 2),
]


def start(argv, env=None):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train.py"), *argv],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when_paused(process, marker: Path, timeout=240):
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"training ended before the pause:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the pause was never reached")
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()


def history_epochs(run):
    path = run / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def next_command(run, argv):
    """What the user runs after a crash: the original command when no epoch completed, else --resume."""
    if (run / "last.keras").exists():
        return ["--resume", str(run), "--epochs", str(EPOCHS), "--progress", "none"]
    return argv


@pytest.mark.slow
def test_kill_9_at_every_kind_of_moment_then_continue(tiles, tmp_path):
    run = tmp_path / "run"
    argv = tiny_train_args(*tiles, run, "--epochs", EPOCHS)
    for number, (moment, pause_at, in_progress) in enumerate(KILLS):
        marker = tmp_path / f"paused-{number}"
        kill_when_paused(
            start(next_command(run, argv), {PAUSE_WRITE_ENV: pause_at, PAUSE_MARKER_ENV: str(marker)}), marker
        )
        # Right after the kill: last.keras whole or absent, at most the epoch in progress lost,
        # no checkpoint lost (best.keras, once written, still there and readable).
        saved_epoch = 0
        if (run / "last.keras").exists():
            keras.saving.load_model(run / "last.keras")
            saved_epoch = read_checkpoint_state(run / "last.keras")["epoch"]
        assert in_progress - saved_epoch <= 1, moment
        if number >= 2:  # best.keras was first written (or repaired by the resume) before this kill
            assert read_checkpoint_state(run / "best.keras")["epoch"] == 1, moment

    finish = start(next_command(run, argv))
    output, _ = finish.communicate(timeout=300)
    assert finish.returncode == 0, output

    assert history_epochs(run) == list(range(1, EPOCHS + 1))
    last = keras.saving.load_model(run / "last.keras")
    assert int(last.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    with open(run / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    best_row = max(rows, key=lambda row: float(row["val_miou"]))
    best_state = read_checkpoint_state(run / "best.keras")
    assert float(best_state["val_miou"]) == pytest.approx(float(best_row["val_miou"]))
    keras.saving.load_model(run / "best.keras")
    leftovers = [p.name for p in run.rglob("*") if TEMP_MARK in p.name or p.name == ".lock"]
    assert leftovers == []
