"""The reference study on the course's real split: train on one folder, validate on another, every epoch.

    python bench/real_split.py --train DATA_DIR/landcover-train --val DATA_DIR/landcover-dev \\
        --out STUDY_DIR --models fcn8s,fcn32s --seeds 0,1 --jobs 2 --threads 1 \\
        --candidate default= --candidate "ema@fcn8s=--ema 0.998" --plot curves.png --budget-plot budget.png
    python bench/real_split.py ... --table-only          # summarise the runs there, train nothing

Every candidate x model x seed is one ``scripts/train.py`` run in ``STUDY_DIR/runs/NAME-MODEL-sSEED``,
with the common settings below (``--epochs`` ... ``--precision``, ``--cache``), then the candidate's
own arguments, then anything after ``--``. The study is resumable: the same command keeps finished
runs, continues a stopped one from its last epoch (``--resume``), and leaves a run another process
holds to it. The table: per candidate x model, over its finished runs, the mean ± sd over seeds of the last-three-epoch
mIoU, the best, the per-class IoU (last three epochs), the largest late drop (of the mean curve over
seeds, and of the worst run), minutes per run (wall time, validation included) and training tiles/s (at the
median epoch's wall time, so an epoch that spanned a pause does not count); then every run, unfinished ones
marked, with its median minutes per epoch. Each group is compared with the ``--baseline`` candidate's mean
(default ``default``; once a lever has won, the candidate of the new default) of the same model.
``--plot`` draws validation mIoU per epoch (mean over finished seeds, range shaded; a group with none finished
shows its runs so far) and ``--budget-plot`` the
same against the training images seen in whole-tile areas, on a log axis. ``--budget-series`` names the
candidates that are one recipe at different ``--epochs`` (bench/budget_curve.py): their final mIoU
against images seen, the gain per doubling, and with ``--project-to IMAGES`` that curve carried on.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.cv import (  # noqa: E402
    Run,
    add_study_options,
    finished_only,
    parse_study_args,
    study_parser,
    summarise_study,
    train_all,
)
from bench.cv import common_train_args as cv_train_args  # noqa: E402
from bench.runs_table import group_key, plot_curves  # noqa: E402
from fcn.cli.common import run_cli  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402

log = logging.getLogger(__name__)
from fcn.core.files import write_text_atomic  # noqa: E402
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES  # noqa: E402

SPLIT_FOLDER = "split"  # STUDY_DIR/split/train and /val: links to the two data folders


def link_split(train: Path, val: Path, study: Path) -> Path:
    """``STUDY_DIR/split`` with ``train`` and ``val`` linked to the data folders (kept when they already match)."""
    split = study / SPLIT_FOLDER
    split.mkdir(parents=True, exist_ok=True)
    for name, source in (("train", train), ("val", val)):
        link = split / name
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        if link.exists() or link.is_symlink():
            raise InputError(f"{link}: already links elsewhere; pick another --out")
        link.symlink_to(source.resolve(), target_is_directory=True)
    return split


def run_label(name: str, model: str, seed: int) -> str:
    return f"{name}-{model}-s{seed}"


def plan_runs(args, candidates, split: Path, common: list[str], seeds: list[int]) -> list[Run]:
    """Every candidate x model, for the first seed, then again for each further seed (priority order)."""
    runs_dir = args.out / "runs"
    return [
        Run(name, model, 0, train_args, runs_dir, split, common, seed, label=run_label(name, model, seed))
        for seed in seeds
        for name, models, train_args in candidates
        for model in models
    ]


def common_train_args(args, extra: list[str]) -> list[str]:
    """:mod:`bench.cv`'s shared trainer arguments, with ``--cache`` (a candidate's own come after them)."""
    return cv_train_args(args, (["--cache"] if args.cache else []) + extra)


def area_per_image(run_dir: Path, tile_hw: tuple[int, int]) -> float:
    """The share of a whole tile one training image covers: crop^2 over the tile's area at the training size
    (``--image-size`` squared, else the tiles' own ``tile_hw``); 1 without crops."""
    from fcn.training.config import read_train_config

    config = read_train_config(run_dir)
    if not config.crop:
        return 1.0
    height, width = (config.image_size, config.image_size) if config.image_size else tile_hw
    return min(1.0, config.crop**2 / (height * width))


def add_throughput(table: dict[str, list[dict]], train_tiles: int, tile_hw: tuple[int, int]) -> None:
    """Each run's training tiles per second of wall time (validation included), and per epoch the training
    images it sees in whole-tile areas (a 128^2 crop of a 256^2 tile is a quarter), the budget plot's unit."""
    for runs in table.values():
        for run in runs:
            run["tiles_per_epoch"] = train_tiles * area_per_image(Path(run["dir"]), tile_hw)
            run["images_per_s"] = train_tiles / (60 * run["epoch_minutes"]) if run["epoch_minutes"] else 0.0


def budget_report(table: dict[str, list[dict]], series: list[str], images: float | None) -> tuple[str, dict]:
    """Per model with two or more budget points in the ``series`` candidates: its points and (with ``images``)
    the projection."""
    from bench.budget_curve import budget_markdown, budget_points, project

    texts, projected = [], {}
    finished = {runs[0]["candidate"] for runs in finished_only(table).values()}
    missing = [name for name in series if name not in finished]
    if missing:
        log.warning("--budget-series: no finished run of %s yet, left out of the budget curve", ", ".join(missing))
    models = dict.fromkeys(runs[0]["model"] for runs in table.values() if runs[0]["candidate"] in series)
    for model in models:
        points = budget_points(table, series, model)
        if len(points) < 2:
            continue  # one budget is no curve
        projection = project(points, images) if images else None
        if projection:
            projected[group_key(points[-1].candidate, model)] = projection
        texts.append(budget_markdown(model, points, projection))
    return "\n\n".join(texts), projected


def _group_cells(run: dict) -> str:
    return f"{run['candidate']} | {run['model']}"


def _class_cells(ious: list[float]) -> str:
    return " | ".join(f"{v:.3f}" for v in ious)


def mean_curve_drop(runs: list[dict], after: int) -> float:
    """The largest epoch-to-epoch drop after epoch ``after`` of the runs' mean curve (0 when it only rose)."""
    from fcn.study.curves import largest_drop, mean_curve

    return largest_drop(mean_curve([r["curve"] for r in runs]), after)


def _summary_row(runs: list[dict], after: int, baseline: float | None) -> str:
    """One candidate x model over its finished runs; ``baseline``: the baseline candidate's mean last-3 mIoU of
    that model (None for the baseline itself, or where it has no finished run of that model)."""
    last3 = [r["last3"] for r in runs]
    sd = f"{statistics.stdev(last3):.3f}" if len(runs) > 1 else "–"
    versus = "–" if baseline is None else f"{statistics.mean(last3) - baseline:+.3f}"
    ious = [statistics.mean(r["last3_iou"][c] for r in runs) for c in range(len(SCORED_CLASSES))]
    return (
        f"| {_group_cells(runs[0])} | {len(runs)} | {statistics.mean(last3):.3f} ± {sd} | {versus} | "
        f"{statistics.mean(r['best'] for r in runs):.3f} | {_class_cells(ious)} | "
        f"{mean_curve_drop(runs, after):.3f} / {max(r['worst_drop'] for r in runs):.3f} | "
        f"{statistics.mean(r['minutes'] for r in runs):.1f} | "
        f"{statistics.mean(r['images_per_s'] for r in runs):.2f} |"
    )


def markdown(table: dict[str, list[dict]], after: int, baseline: str = "default") -> str:
    """The summary over finished runs (mean ± sd over seeds, and the difference to the ``baseline``
    candidate's mean of the same model), then one row per run, unfinished ones marked."""
    classes = " | ".join(CLASS_NAMES[c] for c in SCORED_CLASSES)
    lines = [
        f"| candidate | model | seeds | last-3 mIoU mean ± sd | vs {baseline} | best | {classes} | largest drop after "
        f"epoch {after}: mean curve / worst run | min/run | tiles/s |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(SCORED_CLASSES) + "---:|---:|---:|",
    ]
    finished = finished_only(table)
    for runs in finished.values():
        base_runs = finished.get(group_key(baseline, runs[0]["model"]))
        base_mean = statistics.mean(r["last3"] for r in base_runs) if base_runs else None
        lines.append(_summary_row(runs, after, None if runs[0]["candidate"] == baseline else base_mean))
    lines += [
        "",
        f"| candidate | model | seed | epochs | last-3 mIoU | best (epoch) | {classes} | largest late drop | minutes "
        "| min/epoch (median) | tiles/s |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(SCORED_CLASSES) + "---:|---:|---:|---:|",
    ]
    for runs in table.values():
        for r in runs:
            epochs = f"{r['epochs']}" if r["finished"] else f"{r['epochs']} of {r['target_epochs']} (unfinished)"
            best_epoch = 1 + r["curve"].index(r["best"])
            lines.append(
                f"| {_group_cells(r)} | {r['seed']} | {epochs} | {r['last3']:.3f} | {r['best']:.3f} "
                f"({best_epoch}) | {_class_cells(r['last3_iou'])} | {r['worst_drop']:.3f} | {r['minutes']:.1f} | "
                f"{r['epoch_minutes']:.1f} | {r['images_per_s']:.2f} |"
            )
    return "\n".join(lines)


def plot_budget(table: dict[str, list[dict]], path: Path, projected: dict[str, dict]) -> None:
    """Validation mIoU against training images seen in whole-tile areas (log axis): mean over seeds, one line
    per group, the projections dashed."""
    from fcn.study.curves import plot_val_miou

    curves = {key: [r["curve"] for r in runs] for key, runs in table.items()}
    images = {key: runs[0]["tiles_per_epoch"] for key, runs in table.items()}
    plot_val_miou(
        curves,
        path,
        "validation mIoU against training images seen",
        x_per_epoch=images,
        log_x=True,
        x_label="training images seen, in whole-tile areas",
        projections={
            key: (p["images"], p["steady"] if p["shrinking"] is None else p["shrinking"])
            for key, p in projected.items()
        },
    )


def plotted_runs(table: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each group's finished runs, or all its runs while none has finished: a run under way does not
    cut its group's mean curve short, and a group under way still shows."""
    return {key: [r for r in runs if r["finished"]] or runs for key, runs in table.items()}


def write_summary(args, runs: list[Run], train_tiles: int, tile_hw: tuple[int, int]) -> None:
    table = summarise_study(runs, args.after)
    if not table:
        raise InputError(f"{args.out / 'runs'}: no run has recorded an epoch yet")
    add_throughput(table, train_tiles, tile_hw)
    text = markdown(table, args.after, args.baseline or "default")
    projected = {}
    if args.budget_series:
        budget_text, projected = budget_report(table, args.budget_series, args.project_to)
        text += "\n\n" + budget_text
    print(text)
    write_text_atomic(args.out / "study.md", text + "\n")
    write_text_atomic(args.out / "study.json", json.dumps({"table": table, "projections": projected}, indent=2) + "\n")
    plotted = plotted_runs(table)
    if args.plot:
        title = "validation mIoU per epoch: mean over finished seeds (count), range shaded"
        plot_curves(plotted, args.plot, title=title)
    if args.budget_plot:
        plot_budget(plotted, args.budget_plot, projected)


def get_args_parser() -> argparse.ArgumentParser:
    parser = study_parser("bench/real_split.py", __doc__)
    parser.add_argument("--train", type=Path, required=True, help="training tiles (DATA_DIR/landcover-train)")
    parser.add_argument("--val", type=Path, required=True, help="validation tiles (DATA_DIR/landcover-dev)")
    parser.add_argument("--out", type=Path, required=True, help="study folder: split/, runs/, study.md, study.json")
    parser.add_argument(
        "--models", default="fcn8s,fcn32s", help="models of candidates without @ (default fcn8s,fcn32s)"
    )
    parser.add_argument("--candidate", action="append", metavar="NAME[@MODELS]=ARGS", help="a recipe (repeatable)")
    parser.add_argument("--seeds", default="0,1", metavar="N,N", help="seeds of every run (default 0,1)")
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="the candidate the others are compared with (default: default; once a lever has won, the new "
        "default's candidate)",
    )
    parser.add_argument("--epochs", type=int, default=20, help="default 20")
    parser.add_argument("--image-size", type=int, default=256, help="default 256")
    parser.add_argument("--batch-size", type=int, default=8, help="default 8")
    parser.add_argument("--precision", default="auto", help="default auto")
    parser.add_argument("--no-cache", dest="cache", action="store_false", help="decode the tiles every epoch")
    add_study_options(parser)
    parser.add_argument("--plot", type=Path, metavar="PNG", help="curves per epoch")
    parser.add_argument("--budget-plot", type=Path, metavar="PNG", help="curves against images seen (log axis)")
    parser.add_argument(
        "--budget-series",
        type=lambda text: [name for name in text.split(",") if name],
        metavar="NAME,NAME",
        help="candidates that are one recipe at different --epochs: their final mIoU against images seen",
    )
    parser.add_argument(
        "--project-to",
        type=float,
        metavar="IMAGES",
        help="with --budget-series: carry the budget curve on to this many training images seen in whole-tile "
        "areas (e.g. 80000: 40 epochs over 2,000 tiles without crops)",
    )
    return parser


def main(argv=None) -> int:
    args, extra, candidates, seeds = parse_study_args(get_args_parser(), argv)
    if args.project_to and not args.budget_series:
        raise InputError("--project-to needs --budget-series (the runs whose ends make the budget curve)")
    if args.baseline and args.baseline not in {name for name, _, _ in candidates}:
        raise InputError(f"--baseline {args.baseline}: not one of the --candidate names")
    for folder in (args.train, args.val):
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
    from fcn.core.images import image_size
    from fcn.data.pairs import find_pairs

    pairs = find_pairs(args.train)
    train_tiles, tile_hw = len(pairs), image_size(pairs[0].image_path)
    split = link_split(args.train, args.val, args.out)
    runs = plan_runs(args, candidates, split, common_train_args(args, extra), seeds)
    if not args.table_only:
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        train_all(runs, args.jobs, args.threads)
    write_summary(args, runs, train_tiles, tile_hw)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
