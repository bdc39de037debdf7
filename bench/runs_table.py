"""Summarise training runs as the recipe study's table (docs/RESULTS.md).

    python bench/runs_table.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--after 6] [--json FILE] [--plot FILE.png]

Per run, from its ``history.csv``: the mean validation mIoU of the last three evaluations, the best,
the per-class IoU of the last epoch, the largest drop between consecutive evaluations after epoch
``--after`` (the "swing"), the training minutes, and the number of epochs. Runs given as
``NAME=DIR1,DIR2`` (several seeds) are averaged, with the spread of the last-three means.
``--plot`` draws each NAME's validation mIoU per epoch (the mean over its seeds, their range shaded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.cli.common import run_cli  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES  # noqa: E402
from fcn.model.runfiles import IOU_COLUMNS, RunFiles  # noqa: E402  (TensorFlow-free)
from fcn.study.curves import history_curve, largest_drop, plot_val_miou  # noqa: E402  (TensorFlow-free)


def group_key(candidate: str, model: str) -> str:
    """The study table's key of one candidate x model (its label in the plots and the JSON too)."""
    return f"{candidate} {model}"


def summarise(run_dir: Path, after: int) -> dict:
    """The figures of one run directory."""
    files = RunFiles(run_dir)
    rows = files.read_history()
    if not rows:
        raise InputError(f"{files.history_path}: no epoch recorded")
    miou = history_curve(rows)
    return {
        "epochs": len(rows),
        "last3": statistics.mean(miou[-3:]),
        "best": max(miou),
        "worst_drop": largest_drop(miou, after),
        "minutes": sum(r["seconds"] for r in rows) / 60,
        "epoch_minutes": statistics.median(r["seconds"] for r in rows) / 60,  # a paused epoch does not move it
        "last_iou": [rows[-1][c] for c in IOU_COLUMNS],
        "curve": miou,
    }


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR[,RUN_DIR...]")
    parser.add_argument("--after", type=int, default=6, help="count drops between evaluations after this epoch")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also plot the validation mIoU curves here")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    table = {}
    for spec in args.runs:
        name, _, dirs = spec.partition("=")
        if not dirs:
            raise InputError(f"{spec}: expected NAME=RUN_DIR")
        table[name] = [summarise(Path(d), args.after) for d in dirs.split(",")]
    header = (
        "| run | seeds | mean of last 3 | best | "
        + " | ".join(CLASS_NAMES[c] for c in SCORED_CLASSES)
        + f" | largest drop after epoch {args.after} | minutes |"
    )
    print(header)
    print("|---|---:|---:|---:|" + "---:|" * len(SCORED_CLASSES) + "---:|---:|")
    for name, runs in table.items():
        last3 = [r["last3"] for r in runs]
        spread = f" ± {statistics.stdev(last3):.3f}" if len(runs) > 1 else ""
        ious = [statistics.mean(r["last_iou"][c] for r in runs) for c in range(len(SCORED_CLASSES))]
        print(
            f"| {name} | {len(runs)} | {statistics.mean(last3):.3f}{spread} | {statistics.mean(r['best'] for r in runs):.3f} | "
            + " | ".join(f"{v:.3f}" for v in ious)
            + f" | {max(r['worst_drop'] for r in runs):.3f} | {statistics.mean(r['minutes'] for r in runs):.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    if args.plot:
        plot_curves(table, args.plot)
    return 0


def plot_curves(
    table: dict[str, list[dict]],
    path: Path,
    title: str = "validation mIoU per epoch: mean over seeds (count), range shaded",
) -> None:
    """Mean validation mIoU per epoch of each named run group, the runs' range shaded.

    A run's optional ``first_epoch`` (a second stage drawn after its first stage) shifts its group's x axis.
    """
    curves = {name: [run["curve"] for run in runs] for name, runs in table.items()}
    first_epochs = {name: runs[0].get("first_epoch", 1) for name, runs in table.items()}
    plot_val_miou(curves, path, title, first_epochs)


if __name__ == "__main__":
    sys.exit(run_cli(main))
