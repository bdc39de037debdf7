"""End-to-end training on tiny synthetic tiles: the run directory, resume, crash safety, bad input."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn import train
from fcn.callbacks import HISTORY_COLUMNS, RunCheckpoint, StopControl, read_checkpoint_state, save_checkpoint
from fcn.figures import GAP, LABEL_HEIGHT
from fcn.images import read_rgb
from fcn.palette import PALETTE
from fcn.synthetic import make_synthetic_dataset


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiles")
    train_dir, val_dir = make_synthetic_dataset(root, n_train=8, n_val=4, size=64, seed=3, ids_val=["0008", "0097", "0107"])
    return train_dir, val_dir


def base_args(tiles, out, *extra):
    train_dir, val_dir = tiles
    return ["--model", "fcn8s", "--train-dir", str(train_dir), "--val-dir", str(val_dir), "--out", str(out),
            "--weights", "none", "--batch-size", "4", "--lr", "1e-4", "--verbose", "0", *extra]


def read_history(run):
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def two_epoch_run(tiles, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    assert train.main(base_args(tiles, run, "--epochs", "2")) == 0
    return run


def test_run_directory_has_every_artefact(two_epoch_run, tiles):
    run = two_epoch_run
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["model"] == "fcn8s" and config["args"]["epochs"] == 2
    assert config["versions"]["tensorflow"] and config["started"]
    assert config["resolved"]["tracked_ids"] == ["0008", "0097", "0107"]

    rows = read_history(run)
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        assert 0 <= float(row["val_miou"]) <= 1 and float(row["loss"]) > 0 and float(row["seconds"]) > 0
        assert float(row["lr"]) == pytest.approx(1e-4)

    for name in ("last.keras", "best.keras"):
        model = keras.saving.load_model(run / name)
        assert model.output_shape[-1] == 7
    assert read_checkpoint_state(run / "last.keras")["epoch"] == 2
    best_state = read_checkpoint_state(run / "best.keras")
    assert best_state["val_miou"] == pytest.approx(max(float(r["val_miou"]) for r in rows))

    palette = {tuple(c) for c in PALETTE}
    for tile_id in ("0008", "0097", "0107"):
        for epoch in (1, 2):
            mask = read_rgb(run / "tracked" / tile_id / f"epoch_{epoch:03d}.png")
            assert mask.shape == (64, 64, 3)
            assert {tuple(c) for c in np.unique(mask.reshape(-1, 3), axis=0)} <= palette
        montage = read_rgb(run / "tracked" / f"{tile_id}.png")
        # satellite, ground truth, epoch 1 and epoch 2 side by side under their labels
        assert montage.shape == (64 + LABEL_HEIGHT, 4 * 64 + 3 * GAP, 3)
    assert list((run / "tensorboard").rglob("events.out.tfevents*"))


def test_resume_continues_history_and_optimizer(two_epoch_run, tmp_path):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(two_epoch_run, run)
    before = keras.saving.load_model(run / "last.keras").optimizer.iterations.numpy()
    assert train.main(["--resume", str(run), "--epochs", "3", "--verbose", "0"]) == 0
    rows = read_history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    after = keras.saving.load_model(run / "last.keras").optimizer.iterations.numpy()
    assert before == 4 and after == 6  # 8 tiles / batch 4 = 2 steps per epoch
    assert (run / "tracked" / "0008" / "epoch_003.png").is_file()
    assert len(json.loads((run / "config.json").read_text())["resumed"]) == 1


def test_resume_drops_a_history_row_the_checkpoint_does_not_hold(two_epoch_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    with open(run / "history.csv", "a") as handle:  # as if killed after the row, before last.keras
        handle.write("3,0.1,0.1,0.5,0,0,0,0,0,0,0.0001,1.0\n")
    assert train.main(["--resume", str(run), "--epochs", "2", "--verbose", "0"]) == 0
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2]


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    path = tmp_path / "last.keras"
    save_checkpoint(model, path, {"epoch": 1})

    def dying_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(keras.Model, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, path, {"epoch": 2})
    monkeypatch.undo()
    assert read_checkpoint_state(path) == {"epoch": 1}
    keras.saving.load_model(path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.keras"]


def test_nan_loss_stops_without_saving(tmp_path):
    def nan_loss(y_true, y_pred):
        return keras.ops.mean(y_pred) * float("nan")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("adam", nan_loss)
    stop = StopControl()
    model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=2, epochs=3, verbose=0,
              callbacks=[stop, RunCheckpoint(tmp_path, stop)])
    assert stop.nan_at == (1, 1)
    assert not (tmp_path / "last.keras").exists()


def test_corrupt_training_tile_is_reported_before_training(tiles, tmp_path, capsys):
    import shutil

    train_dir = tmp_path / "train"
    shutil.copytree(tiles[0], train_dir)
    bad = sorted(train_dir.glob("*_sat.jpg"))[2]
    bad.write_bytes(b"not a jpeg at all")
    run = tmp_path / "run"
    from fcn.errors import run_cli

    code = run_cli(train.main, base_args((train_dir, tiles[1]), run, "--epochs", "1"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and bad.name in err[0]
    assert not (run / "last.keras").exists()


def test_help_documents_every_flag_with_defaults(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in ("--epochs", "--batch-size", "--lr", "--weights", "--image-size", "--crop", "--track", "--resume",
                 "--seed", "--demo", "--precision", "--strategy", "--jit-compile"):
        assert flag in text
    assert "(default: 40)" in text and "(default: 0.0001)" in text


def test_summary_prints_the_architecture(capsys):
    assert train.main(["--model", "fcn32s", "--summary"]) == 0
    assert "Total params: 40,118,087" in capsys.readouterr().out


def test_default_track_ids_fall_back_to_first_validation_ids():
    assert train.pick_tracked_ids("0008,0097,0107", ["0001", "0002", "0003", "0004"], "val") == ["0001", "0002", "0003"]
    assert train.pick_tracked_ids("0008,0097,0107", ["0001", "0097"], "val") == ["0097"]
    with pytest.raises(train.InputError, match="0005"):
        train.pick_tracked_ids("0005", ["0001"], "val")


def test_a_new_run_refuses_a_directory_that_holds_one(two_epoch_run, tiles):
    before = (two_epoch_run / "history.csv").read_text()
    with pytest.raises(train.InputError, match="--resume"):
        train.main(base_args(tiles, two_epoch_run, "--epochs", "1"))
    assert (two_epoch_run / "history.csv").read_text() == before
