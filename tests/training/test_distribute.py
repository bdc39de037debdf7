"""tf.distribute on CPU: mirrored over two logical devices, and two local multi-worker processes.

Each run is a subprocess, because devices must be configured before TensorFlow initialises.
Select them with: pytest -k "mirrored or multiworker"; they are marked slow (several processes each).
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fcn.data.synthetic import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = """
import sys
import tensorflow as tf
logical = int(sys.argv[1])
if logical > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical)
from fcn.cli.common import run_cli
from fcn.cli import train
sys.exit(run_cli(train.main, sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    # 8 tiles and a global batch of 8: one step per epoch, so the epoch loss is the first-step loss.
    return make_synthetic_dataset(tmp_path_factory.mktemp("tiles"), n_train=8, n_val=2, size=64, seed=5)


def arguments(tiles, out, strategy):
    # The study's plain loss: with Unknown ignored, Keras normalises the loss over each replica's own
    # counted pixels, so mirrored and single-device losses differ slightly by design.
    return [
        "--recipe",
        "seed",
        "--model",
        "fcn8s",
        "--train-dir",
        str(tiles[0]),
        "--val-dir",
        str(tiles[1]),
        "--out",
        str(out),
        "--weights",
        "none",
        "--width",
        "0.0625",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--progress",
        "none",
        "--precision",
        "float32",
        "--strategy",
        strategy,
        "--seed",
        "1",
    ]


def launch(tiles, out, strategy, logical_devices=1, env=None):
    args = arguments(tiles, out, strategy)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(logical_devices), *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def history(run):
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


@pytest.mark.slow
def test_mirrored_two_cpu_replicas_match_single_device_first_step(tiles, tmp_path, capsys):
    from fcn.cli import train

    mirrored = launch(tiles, tmp_path / "mirrored", "mirrored", logical_devices=2)
    assert train.main(arguments(tiles, tmp_path / "single", "one")) == 0  # the reference, in this process
    assert "1 replica(s)" in capsys.readouterr().err  # a log line
    assert "2 replica(s)" in finish(mirrored)
    loss_single = float(history(tmp_path / "single")[0]["loss"])
    loss_mirrored = float(history(tmp_path / "mirrored")[0]["loss"])
    assert loss_mirrored == pytest.approx(loss_single, rel=1e-4)
    config = json.loads((tmp_path / "mirrored" / "config.json").read_text())
    assert config["resolved"]["replicas"] == 2


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_two_local_workers_chief_writes_the_run(tiles, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run = tmp_path / "run"
    workers = [
        launch(
            tiles,
            run,
            "multiworker",
            env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
        )
        for i in range(2)
    ]
    outputs = [finish(w) for w in workers]
    assert "2 replica(s)" in outputs[0]
    assert [int(r["epoch"]) for r in history(run)] == [1]
    assert (run / "last.keras").is_file() and (run / "config.json").is_file()
    assert not [
        p for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"
    ]  # no stray temporary checkpoints
