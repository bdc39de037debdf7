"""A run directory written by the code before the subpackage move (tests/fixtures/legacy_run, made by
commit 7a73faa: config.json in format 1, its history and tracked masks) still loads, predicts and resumes.

The repository keeps no model files, so the run's two checkpoints are made again here, by training the
run's own settings for its two epochs, and put beside the old files.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.core.palette import NUM_CLASSES  # noqa: E402
from fcn.data.pairs import find_pairs, read_pair  # noqa: E402
from fcn.model.runfiles import RunFiles  # noqa: E402
from fcn.training.config import read_train_config  # noqa: E402

LEGACY_RUN = Path(__file__).parents[1] / "fixtures" / "legacy_run"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """``last.keras`` and ``best.keras`` of the run's settings (tiny FCN8s, 2 epochs of 2 steps)."""
    from fcn.cli import train

    out, data = tmp_path_factory.mktemp("legacy_checkpoints") / "run", LEGACY_RUN / "data"
    argv = ["--train-dir", str(data / "train"), "--val-dir", str(data / "val"), "--out", str(out)]
    argv += ["--weights", "none", "--width", "0.0078125", "--image-size", "64", "--epochs", "2"]
    assert train.main([*argv, "--precision", "float32", "--batch-size", "2", "--progress", "none"]) == 0
    return out


@pytest.fixture
def legacy_run(tmp_path, monkeypatch, checkpoints):
    """A copy of the fixture with its checkpoints, worked on from the folder it was trained in (its data
    paths are relative)."""
    shutil.copytree(LEGACY_RUN, tmp_path / "legacy_run")
    for name in ("last.keras", "best.keras"):
        shutil.copy(checkpoints / name, tmp_path / "legacy_run" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "legacy_run"


def test_the_old_config_reads_into_a_train_config(legacy_run):
    files = RunFiles(legacy_run)
    assert files.read_config()["format"] == 1
    config = read_train_config(legacy_run)
    assert (config.model, config.epochs, config.batch_size, config.image_size) == ("fcn8s", 2, 2, 64)
    assert config.track == ("0008", "0097", "0107") and config.out == legacy_run  # was one string; out moved
    assert config.train_dir == Path("legacy_run/data/train") and config.train_dir.is_dir()
    assert config.width == 0.0078125 and config.ignore_unknown and config.class_weights == "median"
    assert [row["epoch"] for row in files.read_history()] == [1, 2]


def test_best_keras_loads_and_predicts(legacy_run):
    from fcn.inference.engine import Predictor
    from fcn.model.checkpoints import load_model

    model = load_model(legacy_run)  # the run directory: its best.keras
    assert model.fcn_info.model == "fcn8s" and model.fcn_info.train_scale == 1.0
    rgb, labels = read_pair(find_pairs(legacy_run / "data" / "val")[0])
    classes = Predictor(model).predict_classes(rgb)
    assert classes.shape == labels.shape and classes.max() < NUM_CLASSES


@pytest.mark.slow
def test_resume_trains_one_more_epoch(legacy_run, capsys):
    from fcn.cli import train
    from fcn.model.checkpoints import read_checkpoint_state

    before = keras.saving.load_model(legacy_run / "last.keras").optimizer.iterations.numpy()
    assert train.main(["--resume", "legacy_run", "--epochs", "3", "--progress", "none"]) == 0
    files = RunFiles(legacy_run)
    assert [row["epoch"] for row in files.read_history()] == [1, 2, 3]
    assert read_checkpoint_state(files.last)["epoch"] == 3
    after = keras.saving.load_model(files.last).optimizer.iterations.numpy()
    assert (before, after) == (4, 6)  # 4 tiles, batch 2: two steps per epoch
    document = json.loads(files.config_path.read_text())
    assert document["format"] == 2 and len(document["resumed"]) == 1
    assert document["started"] == json.loads((LEGACY_RUN / "config.json").read_text())["started"]
    assert document["args"]["track"] == ["0008", "0097", "0107"]
    assert np.isfinite(files.read_history()[-1]["val_miou"])
    assert (legacy_run / "tracked" / "0008" / "epoch_003.png").is_file()
