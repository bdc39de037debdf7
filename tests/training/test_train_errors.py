"""train.py's promises on bad input: one line naming the file or flag, exit code 2, nothing left behind.

Each case of the reliability issue (#12) is a row of the table below; the NaN and crash cases have
their own tests (here and in test_crash.py).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from fcn.cli import train  # noqa: E402
from fcn.cli.common import run_cli  # noqa: E402
from fcn.training.rundir import RunDirectory  # noqa: E402
from helpers import tiny_train_args  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def damage_jpeg_in_the_middle(path: Path) -> None:
    """Overwrite the middle of the entropy-coded data with a bad marker; the end marker stays."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff\xc7" + bytes(range(62))
    path.write_bytes(bytes(data))
    assert data.endswith(b"\xff\xd9")
    with pytest.raises(OSError):  # really broken for the decoders, not just garbled pixels
        Image.open(path).load()


def plant_end_marker_in_the_scan(path: Path) -> None:
    """An end marker in the middle of the scan: Pillow decodes the rest as grey without a word."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2] = b"\xff\xd9"
    path.write_bytes(bytes(data))
    with Image.open(path) as image:
        image.load()  # no error: only libjpeg's warning on stderr tells


def other_architecture_weights(tmp_path: Path) -> Path:
    from helpers import tiny_fcn

    path = tmp_path / "fcn32s.weights.h5"
    tiny_fcn("fcn32s").save_weights(path)
    return path


def case_arguments(case, tiles, tmp_path, trained_run):
    """(argv, text the error line must contain) for one bad-input case; may prepare files."""
    out = tmp_path / "run"
    base = tiny_train_args(*tiles, out, "--epochs", "1")
    if case == "damaged jpeg":
        train_dir = tmp_path / "train"
        shutil.copytree(tiles[0], train_dir)
        bad = sorted(train_dir.glob("*_sat.jpg"))[2]
        damage_jpeg_in_the_middle(bad)
        return tiny_train_args(train_dir, tiles[1], out, "--epochs", "1"), bad.name
    if case == "jpeg that decodes with warnings":
        train_dir = tmp_path / "train"
        shutil.copytree(tiles[0], train_dir)
        bad = sorted(train_dir.glob("*_sat.jpg"))[1]
        plant_end_marker_in_the_scan(bad)
        return tiny_train_args(
            train_dir, tiles[1], out, "--epochs", "1"
        ), f"{bad.name}: damaged JPEG (Corrupt JPEG data"
    if case == "out under a file":
        (tmp_path / "file").write_text("x")
        return tiny_train_args(*tiles, tmp_path / "file" / "run", "--epochs", "1"), "is a file"
    if case == "truncated last.keras":
        run = tmp_path / "resumed"
        shutil.copytree(trained_run, run)
        data = (run / "last.keras").read_bytes()
        (run / "last.keras").write_bytes(data[: len(data) // 3])
        return ["--resume", str(run), "--epochs", "3", "--progress", "none"], "last.keras: damaged"
    if case in ("epochs 0", "epochs -1"):
        return base + ["--epochs", case.split()[1]], "--epochs"
    if case in ("batch size 0", "batch size -1"):
        return base + ["--batch-size", case.split()[2]], "--batch-size"
    if case == "image size 100":
        return base + ["--image-size", "100"], "--image-size: must be a multiple of 32"
    if case == "crop larger than image size":
        return base + ["--crop", "128", "--image-size", "64"], "--crop 128 is larger than --image-size 64"
    if case == "weights of another architecture":
        path = other_architecture_weights(tmp_path)
        argv = base.copy()
        argv[argv.index("--weights") + 1] = str(path)
        return argv, path.name
    if case == "missing weights file":
        argv = base.copy()
        argv[argv.index("--weights") + 1] = str(tmp_path / "nope.keras")
        return argv, "nope.keras"
    if case == "missing train dir":
        return tiny_train_args(tmp_path / "nowhere", tiles[1], out, "--epochs", "1"), "nowhere"
    if case == "width with imagenet":
        argv = base.copy()
        argv[argv.index("--weights") + 1] = "imagenet"
        return argv, "--width"
    raise AssertionError(case)


CASES = [
    "damaged jpeg",
    "jpeg that decodes with warnings",
    "out under a file",
    "truncated last.keras",
    "epochs 0",
    "epochs -1",
    "batch size 0",
    "batch size -1",
    "image size 100",
    "crop larger than image size",
    "weights of another architecture",
    "missing weights file",
    "missing train dir",
    "width with imagenet",
]


@pytest.mark.slow  # needs the session's trained run
@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tiles, tmp_path, trained_run, capsys):
    argv, named = case_arguments(case, tiles, tmp_path, trained_run)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = run_cli(train.main, argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert "Traceback" not in out + err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing half-made


def test_a_busy_run_directory_is_refused(tiles, tmp_path, capsys):
    run = tmp_path / "run"
    with RunDirectory(run):  # another training holds it
        assert run_cli(train.main, tiny_train_args(*tiles, run, "--epochs", "1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use by another training" in err[0]
    assert not (run / "history.csv").exists()


def test_nan_in_validation_stops_the_run_without_saving_the_epoch(tmp_path):
    from fcn.inference.engine import Predictor
    from fcn.model.checkpoints import ModelInfo
    from fcn.model.runfiles import RunFiles
    from fcn.training.callbacks import EpochValidation, HistoryCSV, RunCheckpoint, StopControl

    class NanWhenPredicting(keras.layers.Layer):
        def call(self, x, training=None):
            return x if training else x * float("nan")

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(7, 1)(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(NanWhenPredicting()(x)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 7, (4, 32, 32)).astype("int32")
    tiles = [(f"{i:04d}", images[i].astype(np.uint8), labels[i].astype(np.uint8)) for i in range(2)]
    stop = StopControl()
    callbacks = [
        stop,
        EpochValidation(tiles, Predictor, [], RunFiles(tmp_path), stop),
        HistoryCSV(RunFiles(tmp_path), stop, 3),
        RunCheckpoint(RunFiles(tmp_path), stop, ModelInfo()),
    ]
    history = model.fit(images, labels, batch_size=2, epochs=3, verbose=0, callbacks=callbacks)
    assert np.isfinite(history.history["loss"][0])  # training itself was fine
    assert stop.nan_at == (1, "the validation loss")
    assert not (tmp_path / "last.keras").exists() and not (tmp_path / "history.csv").exists()


@pytest.mark.slow
def test_the_script_prints_only_the_error_line_even_after_tensorflow_started(tiles, tmp_path):
    path = other_architecture_weights(tmp_path)
    argv = tiny_train_args(*tiles, tmp_path / "run", "--epochs", "1")
    argv[argv.index("--weights") + 1] = str(path)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # TensorFlow's start-up lines are gone
    assert result.stderr.startswith("error: ") and path.name in result.stderr
    assert not (tmp_path / "run").exists()
