"""``fcn-train`` / ``scripts/train.py``: the parser, and ``main`` turning argv into a :class:`TrainConfig`.

Flags default to "not given" (``argparse.SUPPRESS``), so the namespace holds only what the user typed;
:func:`fcn.training.config.make_config` lays those over the demo's and the recipe's values, once.
The defaults shown by ``--help`` are read from :class:`TrainConfig`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fcn import MODEL_NAMES
from fcn.cli.common import (
    ArgumentParser,
    fraction,
    multiple_of_32,
    parse_command_line,
    positive_float,
    positive_int,
    run_cli,
)
from fcn.model.precision import PRECISIONS
from fcn.model.runtime import STRATEGIES
from fcn.training.config import (
    DEMO_DATA,
    DEMO_DEFAULTS,
    RECIPE_ALIASES,
    RECIPES,
    TrainConfig,
    make_config,
    split_ids,
)
from fcn.training.resume import resume_config
from fcn.training.trainer import train

DEFAULTS = TrainConfig()
# Flags that are not TrainConfig fields.
COMMAND_FLAGS = ("summary", "log_level", "legacy_verbose")
# --progress: Keras's verbose argument of model.fit (TrainConfig.verbose).
KERAS_PROGRESS = {"bar": 1, "epoch": 2, "none": 0}
LEGACY_VERBOSE = {"0": "none", "1": "bar", "2": "epoch"}

log = logging.getLogger(__name__)


class _QuietAction(argparse.Action):
    """``-q``: errors only (refused beside ``-v``)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, 0) == 1:
            parser.error("argument -q/--quiet: not allowed with argument -v/--verbose")
        setattr(namespace, self.dest, -1)


class _VerboseAction(argparse.Action):
    """``-v``/``--verbose``: debugging details, as in every command; ``--verbose 0|1|2`` is the old spelling of
    ``--progress none|bar|epoch`` (still taken, with a warning)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            if getattr(namespace, self.dest, 0) == -1:
                parser.error("argument -v/--verbose: not allowed with argument -q/--quiet")
            setattr(namespace, self.dest, 1)
        elif values in LEGACY_VERBOSE:
            namespace.progress, namespace.legacy_verbose = LEGACY_VERBOSE[values], values
        else:
            parser.error(f"argument -v/--verbose: takes no value (got {values!r}; Keras's progress is --progress)")


def _gsd(text: str) -> float | None:
    return None if text.lower() in ("none", "unknown") else positive_float(text)


def _default(name: str) -> str:
    value = getattr(DEFAULTS, name)
    if isinstance(value, tuple):
        value = ",".join(map(str, value)) if value and isinstance(value[0], str) else " ".join(map(str, value))
    return f" (default: {value})"


def get_args_parser() -> argparse.ArgumentParser:
    """The parser (declarative; the defaults in the help come from :class:`TrainConfig`)."""
    parser = ArgumentParser(
        prog="fcn-train",
        description="Train an FCN on land-cover tiles (folders of xxxx_sat.jpg + xxxx_mask.png).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--model", choices=MODEL_NAMES, help="architecture" + _default("model"))
    parser.add_argument("--train-dir", type=Path, help="training tiles")
    parser.add_argument("--val-dir", type=Path, help="validation tiles (scored every epoch at their own size)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<model>-<time>, or runs/demo-<time>)")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        help="total epochs (with --resume: the new target; default there: the run's own)" + _default("epochs"),
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help="global batch size (split across replicas)" + _default("batch_size")
    )
    parser.add_argument(
        "--weights", help="encoder init: imagenet, none, or a .weights.h5/.keras PATH" + _default("weights")
    )
    parser.add_argument(
        "--image-size",
        type=multiple_of_32,
        help="train at N x N, N a multiple of 32 (images bilinear, masks nearest); validation and prediction "
        "then run at the same scale. Default: native size",
    )
    parser.add_argument(
        "--crop", type=multiple_of_32, help="random N x N training crops (after --image-size), N a multiple of 32"
    )
    parser.add_argument(
        "--gsd",
        type=_gsd,
        metavar="M",
        help="ground sample distance of the training tiles in metres per pixel ('none' if unknown); recorded in "
        "the checkpoints so that prediction can match it" + _default("gsd"),
    )
    parser.add_argument(
        "--track",
        type=split_ids,
        help="validation ids whose masks are saved every epoch (default ids that are missing are replaced by the "
        "first validation ids)" + _default("track"),
    )

    recipe = parser.add_argument_group(
        "recipe (defaults: the measured best, see docs/RESULTS.md; --recipe course-2018: the 2018 study's)"
    )
    recipe.add_argument(
        "--recipe",
        choices=(*RECIPES, *RECIPE_ALIASES),
        help="course-2018 (old name: seed) = constant Adam 1e-4 without balancing or extra augmentation "
        "(flags given too still apply)" + _default("recipe"),
    )
    recipe.add_argument("--lr", type=positive_float, help="peak Adam learning rate (warm-up target)" + _default("lr"))
    recipe.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        help="learning rate over the run's total steps: constant, or cosine decay to 1%% of --lr"
        + _default("lr_schedule"),
    )
    recipe.add_argument(
        "--warmup",
        type=fraction,
        help="fraction of the run's steps spent ramping the learning rate up from 1%% of --lr" + _default("warmup"),
    )
    recipe.add_argument(
        "--encoder-lr-mult",
        type=positive_float,
        help="learning rate of the ImageNet encoder relative to --lr" + _default("encoder_lr_mult"),
    )
    recipe.add_argument(
        "--ema",
        type=fraction,
        help="momentum of a moving average of the weights, used for validation and checkpoints (0: off)"
        + _default("ema"),
    )
    recipe.add_argument(
        "--class-weights",
        choices=("none", "median", "sqrt-median"),
        help="loss weights per class: median-frequency balancing from the training masks (sqrt-median: its "
        "square root, a softer balancing)" + _default("class_weights"),
    )
    recipe.add_argument(
        "--ignore-unknown",
        action=argparse.BooleanOptionalAction,
        help="leave Unknown pixels out of the loss; --no-ignore-unknown counts them (with class balancing, at "
        "the weight of a median-frequency class, 1)" + _default("ignore_unknown"),
    )
    recipe.add_argument(
        "--scale-aug",
        type=positive_float,
        nargs=2,
        metavar=("LO", "HI"),
        help="random training rescale range, e.g. 0.75 1.25" + _default("scale_aug"),
    )
    recipe.add_argument(
        "--color-aug",
        type=fraction,
        help="random brightness/contrast/saturation factors in [1-S, 1+S] (0: off)" + _default("color_aug"),
    )
    recipe.add_argument(
        "--fc1-kernel",
        type=positive_int,
        help="fc_1 kernel size: 2 as in the seed, 7 as in the FCN paper" + _default("fc1_kernel"),
    )
    recipe.add_argument("--dropout", type=fraction, help="dropout after fc_1 and fc_2" + _default("dropout"))
    recipe.add_argument(
        "--skip-scaling",
        action="store_true",
        help='FCN16s/FCN8s: pool4 x 0.01 and pool3 x 0.0001 before their score layers (the "at-once" FCN8s)',
    )
    recipe.add_argument(
        "--init-from",
        type=Path,
        metavar="RUN_DIR|FILE",
        help="after the --weights init, copy every layer whose name and weight shapes match from this .keras "
        "file or run directory (its last.keras): e.g. a trained FCN32s for a staged FCN8s",
    )
    recipe.add_argument(
        "--width",
        type=positive_float,
        help="multiplies every layer width (tests and demos; ImageNet weights need 1)" + _default("width"),
    )

    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--cache", action="store_true", help="keep decoded training tiles in memory")
    runtime.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto = mixed_float16 on tensor-core GPUs; on CPUs with bfloat16 instructions mixed_bfloat16 where a "
        "short probe (cached per machine; FCN_PRECISION_PROBE=0 skips it) measures it faster; else float32"
        + _default("precision"),
    )
    runtime.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        help="XLA; auto = Keras's rule (on for GPUs, off on CPU)" + _default("jit_compile"),
    )
    runtime.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="auto = mirrored over several local GPUs; multiworker reads TF_CONFIG" + _default("strategy"),
    )
    runtime.add_argument(
        "--seed", type=int, help="seeds shuffling, augmentation, init and --demo data" + _default("seed")
    )
    runtime.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run from its last.keras, with its own settings, up to its own epochs (or --epochs); only "
        "--epochs, --progress, --cache, --jit-compile and --strategy may change",
    )
    runtime.add_argument(
        "--demo",
        action="store_true",
        help="generate a small synthetic dataset in the run directory and train on it with CPU-sized defaults "
        f"({DEMO_DEFAULTS['model']}, {DEMO_DEFAULTS['epochs']} epochs, {DEMO_DATA['n_train']}+{DEMO_DATA['n_val']} "
        f"tiles of {DEMO_DATA['size']} px)",
    )
    runtime.add_argument("--summary", action="store_true", help="print the architecture table and exit")
    runtime.add_argument(
        "--progress",
        choices=tuple(KERAS_PROGRESS),
        help="Keras's progress during an epoch: bar, epoch (Keras's line per epoch) or none (default: bar; "
        "with --demo or -q: none, fcn's own line per epoch stays)",
    )
    runtime.add_argument(
        "-q", "--quiet", dest="log_level", action=_QuietAction, help="only errors on stderr (no notes, no progress)"
    )
    runtime.add_argument(
        "-v",
        "--verbose",
        dest="log_level",
        action=_VerboseAction,
        help="debugging details too (--verbose 0/1/2: the old spelling of --progress none/bar/epoch)",
    )
    return parser


def _config_of(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of a parsed command line: a new run, or the run ``--resume`` names
    (whose settings it keeps; see :func:`fcn.training.resume.resume_config`)."""
    given = {key: value for key, value in vars(args).items() if key not in COMMAND_FLAGS}
    progress = given.pop("progress", None)
    if progress is not None:
        given["verbose"] = KERAS_PROGRESS[progress]
    elif getattr(args, "log_level", 0) < 0 or given.get("demo"):
        given["verbose"] = 0  # -q: no progress; the demo: fcn's one line per epoch, no Keras bar beside it
    if "resume" in given:
        return resume_config(given["resume"], given)
    recipe, demo = given.pop("recipe", "default"), given.pop("demo", False)
    config = make_config(given, recipe=recipe, demo=demo)
    if not getattr(args, "summary", False):
        config.check()
    return config


def _print_summary(config: TrainConfig) -> int:
    from fcn.model.builders import build_model, format_summary

    size = config.image_size or 512
    model = build_model(
        config.model,
        input_shape=(size, size, 3),
        weights=None,
        fc1_kernel_size=config.fc1_kernel,
        dropout=config.dropout,
        width=config.width,
        skip_scaling=config.skip_scaling,
    )
    print(format_summary(model))
    return 0


def main(argv=None) -> int:
    args = parse_command_line(get_args_parser(), argv)
    if getattr(args, "legacy_verbose", None) is not None:
        log.warning(
            "--verbose %s is the old spelling of --progress %s",
            args.legacy_verbose,
            LEGACY_VERBOSE[args.legacy_verbose],
        )
    config = _config_of(args)
    if getattr(args, "summary", False):
        return _print_summary(config)
    return train(config)


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
