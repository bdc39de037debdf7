"""fcn.training.trainer end to end on tiny synthetic tiles and a tiny FCN8s: the run directory, every recipe flag,
resume, the demo, and prediction reproducing what validation scored."""

import csv
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.core.evaluate import evaluate_folders  # noqa: E402
from fcn.core.figures import GAP, LABEL_HEIGHT  # noqa: E402
from fcn.core.images import read_rgb  # noqa: E402
from fcn.core.palette import PALETTE, UNKNOWN  # noqa: E402
from fcn.data.pipeline import find_pairs, read_pair  # noqa: E402
from fcn.cli import predict  # noqa: E402
from fcn.model.checkpoints import read_checkpoint_state, read_model_info  # noqa: E402
from fcn.training import trainer as train  # noqa: E402
from fcn.training.callbacks import HISTORY_COLUMNS  # noqa: E402
from helpers import TINY_WIDTH, tiny_train_args  # noqa: E402


def read_history(run):
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- the run directory


def test_run_directory_has_every_artefact(trained_run):
    run = trained_run
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["model"] == "fcn8s" and config["args"]["epochs"] == 2
    assert config["versions"]["tensorflow"] and config["started"]
    assert config["resolved"]["tracked_ids"] == ["0008", "0097", "0107"]
    assert config["resolved"]["model_info"]["train_scale"] == 0.5  # --image-size 32 on 64-px tiles
    weights = config["resolved"]["class_weights"]
    assert len(weights) == 7 and weights[UNKNOWN] == 0 and max(weights) > 1  # median frequency

    rows = read_history(run)
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        assert 0 <= float(row["val_miou"]) <= 1 and float(row["loss"]) > 0 and float(row["seconds"]) > 0
        assert float(row["lr"]) == pytest.approx(1e-3)

    for name in ("last.keras", "best.keras"):
        model = keras.saving.load_model(run / name)
        assert model.output_shape[-1] == 7
        assert read_model_info(run / name).train_scale == 0.5
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
    assert not list(run.rglob(".*.tmp-*"))


def test_predict_with_defaults_reproduces_validation_exactly(trained_run, tiles, tmp_path, capsys):
    """predict.py on the run (defaults: its own scale) gives best.keras's recorded val_miou to the digit,
    and that epoch's tracked masks byte for byte."""
    out = tmp_path / "pred"
    assert predict.main(["--model", str(trained_run), "--input", str(tiles[1]), "--output", str(out), "-q"]) == 0
    # The tiny run's masks hardly depend on the scale, so the scale used is checked as well: 32 / 64-px tiles.
    printed = capsys.readouterr()
    assert "predicting at scale 0.5 (the scale the model was trained at" in printed.out + printed.err
    confusion, _ = evaluate_folders(tiles[1], out)
    state = read_checkpoint_state(trained_run / "best.keras")
    assert f"{confusion.mean_iou():f}" == f"{state['val_miou']:f}"
    epoch = state["epoch"]
    for tile_id in ("0008", "0097", "0107"):
        tracked = trained_run / "tracked" / tile_id / f"epoch_{epoch:03d}.png"
        assert (out / f"{tile_id}_mask.png").read_bytes() == tracked.read_bytes()


def test_val_loss_is_the_training_loss(trained_run, tiles):
    """The last epoch's val_loss = the compiled loss (median weights as pixel weights, Unknown ignored)
    of last.keras on the validation tiles, at the tiles' own size."""
    from fcn.inference.engine import Predictor
    from fcn.model.checkpoints import load_model

    weights = np.array(json.loads((trained_run / "config.json").read_text())["resolved"]["class_weights"], np.float32)
    predictor = Predictor(load_model(trained_run / "last.keras"))
    loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=UNKNOWN)
    total, pixels = 0.0, 0
    for pair in find_pairs(tiles[1]):
        rgb, labels = read_pair(pair)
        probs = predictor.predict_probs(rgb)
        total += float(loss(labels[None], probs[None], sample_weight=weights[labels][None])) * labels.size
        pixels += labels.size
    assert float(read_history(trained_run)[-1]["val_loss"]) == pytest.approx(total / pixels, rel=1e-4)


def test_resume_continues_history_and_optimizer(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = keras.saving.load_model(run / "last.keras").optimizer.iterations.numpy()
    assert train.main(["--resume", str(run), "--epochs", "3", "--verbose", "0"]) == 0
    rows = read_history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    after = keras.saving.load_model(run / "last.keras").optimizer.iterations.numpy()
    assert before == 4 and after == 6  # 8 tiles / batch 4 = 2 steps per epoch
    assert (run / "tracked" / "0008" / "epoch_003.png").is_file()
    assert len(json.loads((run / "config.json").read_text())["resumed"]) == 1


def test_resume_drops_a_history_row_the_checkpoint_does_not_hold(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with open(run / "history.csv", "a") as handle:  # as if killed after the row, before last.keras
        handle.write("3,0.1,0.1,0.5,0,0,0,0,0,0,0.0001,1.0\n")
    assert train.main(["--resume", str(run), "--epochs", "2", "--verbose", "0"]) == 0
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2]


# ---------------------------------------------------------------- the recipe flags


def test_recipe_flags_all_take_effect(tiles, tmp_path):
    run = tmp_path / "run"
    argv = tiny_train_args(
        *tiles,
        run,
        "--epochs",
        "2",
        "--crop",
        "32",
        "--scale-aug",
        "0.8",
        "1.25",
        "--cache",
        "--color-aug",
        "0.2",
        "--lr",
        "1e-3",
        "--lr-schedule",
        "cosine",
        "--warmup",
        "0.2",
        "--encoder-lr-mult",
        "0.1",
        "--ema",
        "0.5",
    )
    assert train.main(argv) == 0
    rates = [float(r["lr"]) for r in read_history(run)]
    # cosine after a warm-up of 20 % of the 4 steps: below the peak and falling to 1 % of it at the end
    assert rates[0] > rates[1] == pytest.approx(1e-5) and max(rates) <= 1e-3
    model = keras.saving.load_model(run / "last.keras")
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.MultiOptimizer)
    encoder, head = optimizer.optimizers
    assert float(encoder.learning_rate) == pytest.approx(0.1 * float(head.learning_rate))
    assert all(o.use_ema and o.ema_momentum == 0.5 for o in optimizer.optimizers)
    assert int(optimizer.iterations) == 4
    config = json.loads((run / "config.json").read_text())["args"]
    assert config["crop"] == 32 and config["scale_aug"] == [0.8, 1.25] and config["cache"] is True


def test_default_and_seed_recipes():
    args = train.parse_args(["--train-dir", "t", "--val-dir", "v"])
    for key, value in train.DEFAULT_RECIPE.items():
        assert getattr(args, key) == value
    args = train.parse_args(["--recipe", "seed", "--train-dir", "t", "--val-dir", "v"])
    for key, value in train.SEED_RECIPE.items():
        assert getattr(args, key) == value
    assert train.parse_args(["--recipe", "seed", "--lr", "3e-4"]).lr == 3e-4  # given flags still win
    assert train.parse_args(["--no-ignore-unknown"]).ignore_unknown is False


def test_demo_makes_its_own_data_and_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "DEMO_DATA", {"n_train": 8, "n_val": 4, "size": 64})  # the demo's path, smaller
    run = tmp_path / "demo"
    argv = [
        "--demo",
        "--out",
        str(run),
        "--epochs",
        "1",
        "--width",
        str(TINY_WIDTH),
        "--weights",
        "none",
        "--verbose",
        "0",
        "--precision",
        "float32",
    ]
    assert train.main(argv) == 0
    assert len(find_pairs(run / "data" / "train")) == train.DEMO_DATA["n_train"]
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["model"] == "fcn8s" and config["args"]["batch_size"] == 8  # the demo's defaults
    assert config["args"]["epochs"] == 1  # ...unless given
    assert config["resolved"]["model_info"]["tile_gsd"] is None  # synthetic tiles have no ground resolution
    assert (run / "tracked" / "0008.png").is_file()


# ---------------------------------------------------------------- small pieces


def test_help_documents_every_flag_with_defaults(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in (
        "--epochs",
        "--batch-size",
        "--lr",
        "--weights",
        "--image-size",
        "--crop",
        "--track",
        "--resume",
        "--seed",
        "--demo",
        "--precision",
        "--strategy",
        "--jit-compile",
        "--gsd",
        "--lr-schedule",
        "--warmup",
        "--encoder-lr-mult",
        "--ema",
        "--color-aug",
        "--recipe",
        "--width",
    ):
        assert flag in text
    assert "(default: 40)" in text and "multiple of 32" in text


def test_summary_prints_the_architecture(capsys):
    assert train.main(["--model", "fcn32s", "--summary"]) == 0
    assert "Total params: 40,118,087" in capsys.readouterr().out


def test_default_track_ids_fall_back_to_first_validation_ids():
    assert train.pick_tracked_ids("0008,0097,0107", ["0001", "0002", "0003", "0004"], "val") == ["0001", "0002", "0003"]
    assert train.pick_tracked_ids("0008,0097,0107", ["0001", "0097"], "val") == ["0097"]
    with pytest.raises(train.InputError, match="0005"):
        train.pick_tracked_ids("0005", ["0001"], "val")
