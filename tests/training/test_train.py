"""fcn-train (fcn.cli.train -> fcn.training.trainer) on tiny synthetic tiles and a tiny FCN8s: the run directory,
every recipe flag, the recipes, resume, the demo, and prediction reproducing what validation scored."""

import csv
import json
import re

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.cli import train  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.core.evaluate import evaluate_folders  # noqa: E402
from fcn.core.figures import GAP, LABEL_HEIGHT  # noqa: E402
from fcn.core.images import read_rgb  # noqa: E402
from fcn.core.palette import PALETTE, UNKNOWN  # noqa: E402
from fcn.data.pairs import find_pairs, read_pair  # noqa: E402
from fcn.model.checkpoints import read_checkpoint_state, read_model_info  # noqa: E402
from fcn.training import inputs, trainer  # noqa: E402
from fcn.training.build import build_training_model  # noqa: E402
from fcn.training.config import COURSE_2018_RECIPE, DEFAULT_RECIPE, TrainConfig  # noqa: E402
from helpers import HISTORY_HEADER, TINY_WIDTH, tiny_train_args, train_config  # noqa: E402

slow = pytest.mark.slow  # trains (or reads the session's trained run)
# Flags a user looks for in --help.
FLAGS_DOCUMENTED = (
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
)


def read_history(run):
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- the run directory


@slow
def test_run_directory_has_every_artefact(trained_run):
    run = trained_run
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == 2 and config["args"]["model"] == "fcn8s" and config["args"]["epochs"] == 2
    assert config["resolved"]["precision"] == "float32"
    assert config["resolved"]["precision_reason"] == "--precision float32"  # why, next to what
    assert config["versions"]["tensorflow"] and config["started"]
    assert config["resolved"]["tracked_ids"] == ["0008", "0097", "0107"]
    assert config["resolved"]["model_info"]["train_scale"] == 0.5  # --image-size 32 on 64-px tiles
    weights = config["resolved"]["class_weights"]
    assert len(weights) == 7 and weights[UNKNOWN] == 0 and max(weights) > 1  # median frequency

    rows = read_history(run)
    assert list(rows[0]) == HISTORY_HEADER
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


@slow
def test_predict_with_defaults_reproduces_validation_exactly(trained_run, tiles, tmp_path, capsys):
    """predict.py on the run (defaults: its own scale) gives best.keras's recorded val_miou to the digit,
    and that epoch's tracked masks pixel for pixel (the files' marks differ: predict's names the model)."""
    from fcn.cli import predict

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
        assert np.array_equal(read_rgb(out / f"{tile_id}_mask.png"), read_rgb(tracked))


@slow
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


@slow
def test_resume_continues_history_and_optimizer(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = keras.saving.load_model(run / "last.keras").optimizer.iterations.numpy()
    assert train.main(["--resume", str(run), "--epochs", "3", "--progress", "none"]) == 0
    rows = read_history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    after = keras.saving.load_model(run / "last.keras").optimizer.iterations.numpy()
    assert before == 4 and after == 6  # 8 tiles / batch 4 = 2 steps per epoch
    assert (run / "tracked" / "0008" / "epoch_003.png").is_file()
    assert len(json.loads((run / "config.json").read_text())["resumed"]) == 1


@slow
def test_resume_drops_a_history_row_the_checkpoint_does_not_hold(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with open(run / "history.csv", "a") as handle:  # as if killed after the row, before last.keras
        handle.write("3,0.1,0.1,0.5,0,0,0,0,0,0,0.0001,1.0\n")
    assert train.main(["--resume", str(run), "--epochs", "2", "--progress", "none"]) == 0
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2]


# ---------------------------------------------------------------- the recipe flags


@slow
def test_recipe_flags_all_take_effect(trained_run, tiles, tmp_path, monkeypatch, caplog):
    traces = []
    train_step = keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step", lambda model, data: traces.append(1) or train_step(model, data))
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
        "--skip-scaling",
        "--init-from",
        trained_run,
    )
    with caplog.at_level("INFO", logger="fcn"):
        assert train.main(argv) == 0
    assert len(traces) == 1  # the optimizer is built before fit, so the step is traced once, not twice
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
    assert model.get_layer("scale_pool4").scale == 0.01
    assert "took 21 of 21 layers" in caplog.text  # --init-from an FCN8s into an FCN8s: every layer
    args = json.loads((run / "config.json").read_text())["args"]
    assert args["crop"] == 32 and args["skip_scaling"] is True and args["init_from"] == str(trained_run)


def recipe_config(*flags):
    config, _ = train_config([*flags, "--train-dir", "t", "--val-dir", "v", "--weights", "none"])
    return config.replace(width=TINY_WIDTH, precision="float32")


def learning_rates(model, steps):
    """The optimizer's learning rate at each of these steps."""
    rates = []
    for step in steps:
        model.optimizer.iterations.assign(step)
        rates.append(float(model.optimizer.learning_rate))
    return rates


def test_default_recipe_balances_classes_and_decays_the_learning_rate():
    """The default recipe's model: warm-up then cosine decay of a 5e-5 peak, the square root of the
    median-frequency weights, Unknown ignored."""
    config = recipe_config()
    masks = [np.array([[0, 0, 0, 1], [1, 2, UNKNOWN, UNKNOWN]])]
    model = build_training_model(config, "float32", epoch_steps=10)  # 40 epochs: 400 steps, 20 of warm-up
    first, peak, last = learning_rates(model, [0, 20, 399])
    assert first < peak == pytest.approx(DEFAULT_RECIPE["lr"]) and last < 0.02 * peak
    assert model.loss.ignore_class == UNKNOWN
    weights = inputs.class_weights_for(config, masks)
    # pixels 3, 2, 1 of classes 0, 1, 2: median-frequency weights 2/3, 1, 2, and the default their roots
    assert weights[:3] == pytest.approx(np.sqrt([2 / 3, 1, 2])) and weights[UNKNOWN] == 0
    full = inputs.class_weights_for(recipe_config("--class-weights", "median"), masks)
    assert full[:3] == pytest.approx([2 / 3, 1, 2])


def test_course_2018_recipe_is_constant_adam_without_balancing():
    config = recipe_config("--recipe", "course-2018")
    model = build_training_model(config, "float32", epoch_steps=10)
    assert learning_rates(model, [0, 200, 399]) == pytest.approx([COURSE_2018_RECIPE["lr"]] * 3)
    assert model.loss.ignore_class is None
    assert inputs.class_weights_for(config, [np.zeros((2, 2), int)]) is None
    assert recipe_config("--recipe", "seed") == config  # the old name
    assert recipe_config("--recipe", "seed", "--lr", "3e-4").lr == 3e-4  # given flags still win
    assert recipe_config("--recipe", "seed", "--class-weights", "median").class_weights == "median"


def test_no_ignore_unknown_puts_unknown_pixels_into_the_loss():
    """Under the default recipe (balanced weights) --no-ignore-unknown makes Unknown pixels count: a model
    wrong on Unknown pixels only has a loss, which --ignore-unknown does not see."""
    labels = np.array([[[0, 1], [UNKNOWN, UNKNOWN]]])
    probs = np.full((1, 2, 2, 7), 0.01, np.float32)
    probs[0, 0, 0, 0] = probs[0, 0, 1, 1] = 0.94
    probs[0, 1, :, 0] = 0.94  # Unknown pixels predicted as class 0
    masks = [labels[0], np.array([[2, 3], [4, 5]])]

    def loss_of(*flags):
        config = recipe_config(*flags)
        model = build_training_model(config, "float32", epoch_steps=1)
        weights = np.asarray(inputs.class_weights_for(config, masks), np.float32)
        return float(model.loss(labels, probs, sample_weight=weights[labels])), weights[UNKNOWN]

    ignored, ignored_weight = loss_of()
    counted, counted_weight = loss_of("--no-ignore-unknown")
    assert ignored_weight == 0 and counted_weight == inputs.UNKNOWN_WEIGHT
    assert counted > 2 * ignored


def first_batches(config, pairs, count=2):
    dataset = trainer._training_dataset(config, pairs, None)
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(count)]


def test_augmentation_and_cache_flags_change_what_the_pipeline_yields(tiles, tmp_path):
    """The trainer's dataset, built from the config of each flag, against the plain one (same seed)."""
    import shutil

    folder = tmp_path / "train"
    shutil.copytree(tiles[0], folder)
    pairs = find_pairs(folder)
    base = TrainConfig(batch_size=4, recipe="default")
    plain = first_batches(base, pairs)
    cropped = first_batches(base.replace(crop=32), pairs)
    assert plain[0][0].shape == (4, 64, 64, 3) and cropped[0][0].shape == (4, 32, 32, 3)
    jittered = first_batches(base.replace(color_aug=0.5), pairs)
    assert not np.array_equal(jittered[0][0], plain[0][0]) and np.array_equal(jittered[0][1], plain[0][1])
    scaled = first_batches(base.replace(scale_aug=(1.5, 2.0)), pairs)
    assert not np.array_equal(scaled[0][1], plain[0][1])
    cached = trainer._training_dataset(base.replace(cache=True), pairs, None)
    list(cached)  # one pass fills the cache
    shutil.rmtree(folder)
    assert sum(len(batch[0]) for batch in cached) == 8  # the next pass reads no file
    with pytest.raises(Exception, match="(?i)not found|no such file"):
        list(trainer._training_dataset(base, pairs, None))


@slow
def test_demo_makes_its_own_data_and_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "DEMO_DATA", {"n_train": 8, "n_val": 4, "size": 64})  # the demo's path, smaller
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
        "--progress",
        "none",
        "--precision",
        "float32",
    ]
    assert train.main(argv) == 0
    assert len(find_pairs(run / "data" / "train")) == inputs.DEMO_DATA["n_train"]
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["model"] == "fcn8s" and config["args"]["batch_size"] == 8  # the demo's defaults
    assert config["args"]["epochs"] == 1  # ...unless given
    assert config["args"]["train_dir"] == str(run / "data" / "train")
    assert config["resolved"]["model_info"]["tile_gsd"] is None  # synthetic tiles have no ground resolution
    assert (run / "tracked" / "0008.png").is_file()


# ---------------------------------------------------------------- small pieces


def test_help_documents_every_flag_with_defaults(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = capsys.readouterr().out
    listing = " ".join(out[out.index("\noptions:") :].split())  # the option list, not the usage line above it

    def listed(flag):
        return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", listing) is not None

    for action in train.get_args_parser()._actions:
        assert all(map(listed, action.option_strings)), action.option_strings
        assert action.help and action.help.strip(), f"{action.option_strings} has no help"
    assert [flag for flag in FLAGS_DOCUMENTED if not listed(flag)] == []
    assert "(default: 40)" in listing and "multiple of 32" in listing


def test_q_and_v_mean_what_they_mean_in_every_command_and_progress_is_its_own_flag():
    config, args = train_config(["-q", "--progress", "epoch", "--train-dir", "t", "--val-dir", "v"])
    assert args.log_level == -1 and config.verbose == 2
    assert train_config(["-q", "--train-dir", "t", "--val-dir", "v"])[0].verbose == 0  # -q: no Keras bar
    config, args = train_config(["--verbose", "--train-dir", "t", "--val-dir", "v"])
    assert args.log_level == 1 and config.verbose == 1  # -v/--verbose: debug, as in every command
    config, args = train_config(["--verbose=2", "--train-dir", "t", "--val-dir", "v"])  # the old spelling
    assert config.verbose == 2 and args.legacy_verbose == "2" and getattr(args, "log_level", 0) == 0
    assert train_config(["--demo"])[0].verbose == 0  # fcn's one line per epoch, no Keras bar beside it
    for flags in (["-q", "-v"], ["-v", "-q"]):
        with pytest.raises(InputError, match="not allowed with"):
            train_config(flags)


def test_summary_prints_the_architecture(capsys):
    assert train.main(["--model", "fcn32s", "--summary"]) == 0
    assert "Total params: 40,118,087" in capsys.readouterr().out


def test_default_track_ids_fall_back_to_first_validation_ids():
    assert inputs._pick_tracked_ids("0008,0097,0107", ["0001", "0002", "0003", "0004"], "val") == [
        "0001",
        "0002",
        "0003",
    ]
    assert inputs._pick_tracked_ids(("0008", "0097", "0107"), ["0001", "0097"], "val") == ["0097"]
    with pytest.raises(InputError, match="0005"):
        inputs._pick_tracked_ids("0005", ["0001"], "val")
