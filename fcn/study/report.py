"""Rendering the study report: ``scripts/report.py RUN_DIR [RUN_DIR ...] --out DIR``.

For each training run directory (made by ``scripts/train.py``) the report shows the architecture
table at the seed's 512x512x3 input, the tracked validation tiles learning (the run's montages), the
per-class IoU and mean IoU of ``best.keras`` on the run's validation folder with the course rule
(and the course tool's own output lines), IoU and accuracy near ground-truth class boundaries
versus interior pixels, and the validation mIoU per epoch; then a side-by-side table of all runs.

It reads only the run directories and the validation folder named in each ``config.json``; the
numbers come from :mod:`fcn.study.scoring`. TensorFlow is imported only to build the architecture tables
and score the checkpoints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn.cli.common import ArgumentParser, non_negative_int, positive_int, run_cli
from fcn.core.errors import InputError
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES
from fcn.study.scoring import _SAFE_NAME, DEFAULT_BOUNDARY_PX, Run, Scores, load_run, score_checkpoint, unique_names

# The input the course seed prints its architecture table at.
SEED_INPUT_SHAPE = (512, 512, 3)


# ---------------------------------------------------------------- architecture


def architecture(model_name: str, *, fc1_kernel_size: int = 2, dropout: float = 0.0, width: float = 1.0) -> dict:
    """The seed-style architecture table of a model at the seed's 512x512x3 input.

    Args:
        model_name: ``fcn32s``, ``fcn16s`` or ``fcn8s``.
        fc1_kernel_size, dropout, width: the run's ``--fc1-kernel``, ``--dropout`` and ``--width``.

    Returns:
        dict with ``markdown`` (the table and totals), ``total_params``, ``trainable_params`` and
        ``input_shape``.
    """
    import keras

    from fcn.model.builders import build_model, format_summary

    model = build_model(
        model_name,
        input_shape=SEED_INPUT_SHAPE,
        weights=None,
        fc1_kernel_size=fc1_kernel_size,
        dropout=dropout,
        width=width,
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    result = {
        "markdown": format_summary(model, markdown=True),
        "total_params": int(model.count_params()),
        "trainable_params": trainable,
        "input_shape": list(SEED_INPUT_SHAPE),
    }
    del model
    keras.backend.clear_session()
    return result


# ---------------------------------------------------------------- figures


def require_matplotlib():
    """Import matplotlib with the Agg backend; InputError with the install hint when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "matplotlib is needed for the curves: pip install 'fcn[report]' (or pip install matplotlib)"
        ) from None
    return plt


def plot_val_miou(curves: dict[str, list[dict]], path: str | Path, title: str) -> None:
    """Validation mIoU per epoch, one line per run, the best epoch of each marked.

    Args:
        curves: run label -> history rows (``epoch``, ``val_miou``).
        path: PNG to write.
        title: figure title.
    """
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for label, rows in curves.items():
            epochs = [r["epoch"] for r in rows]
            values = [r["val_miou"] for r in rows]
            (line,) = ax.plot(epochs, values, marker="o", markersize=3, label=label)
            finite = [(v, e) for e, v in zip(epochs, values) if math.isfinite(v)]
            if finite:
                best_value, best_epoch = max(finite)
                ax.plot([best_epoch], [best_value], marker="*", markersize=12, color=line.get_color(), linestyle="none")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (star: best)")
        ax.set_ylabel("validation mIoU (classes 0-5)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- the report


@dataclass
class RunReport:
    """Everything the report shows about one run (see :meth:`to_dict` for the JSON form)."""

    run: Run
    architecture: dict
    scores: Scores
    best_state: dict
    curve: str
    montages: dict[str, str | None]
    montage_epochs: dict[str, list[int]]

    @property
    def best_epoch(self) -> int | None:
        if "epoch" in self.best_state:
            return int(self.best_state["epoch"])
        finite = [(r["val_miou"], r["epoch"]) for r in self.run.history if math.isfinite(r["val_miou"])]
        return max(finite)[1] if finite else None

    @property
    def training_seconds(self) -> float:
        return float(sum(r.get("seconds", 0.0) for r in self.run.history if math.isfinite(r.get("seconds", math.nan))))

    def to_dict(self) -> dict:
        args = self.run.args
        return _json_ready(
            {
                "name": self.run.name,
                "path": str(self.run.path.resolve()),
                "model": self.run.model_name,
                "args": args,
                "resolved": self.run.config.get("resolved", {}),
                "architecture": {k: v for k, v in self.architecture.items() if k != "markdown"},
                "epochs_trained": len(self.run.history),
                "best_epoch": self.best_epoch,
                "recorded_best_val_miou": self.best_state.get("val_miou"),
                "training_seconds": round(self.training_seconds, 2),
                "history": self.run.history,
                "validation": {"val_dir": str(self.run.val_dir), **self.scores.to_dict()},
                "files": {"curve": self.curve, "montages": self.montages},
            }
        )


def _json_ready(value):
    """nan/inf become None, recursively, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _copy_montages(run: Run, out_dir: Path) -> tuple[dict[str, str | None], dict[str, list[int]]]:
    """Copy ``tracked/ID.png`` into ``out_dir/<run>/``; paths relative to ``out_dir`` (None if missing)."""
    from fcn.core.figures import pick_epochs

    montages, epochs = {}, {}
    for tile_id in run.tracked_ids:
        source = run.path / "tracked" / f"{tile_id}.png"
        saved = [
            int(p.stem.split("_")[1])
            for p in (run.path / "tracked" / tile_id).glob("epoch_*.png")
            if p.stem.split("_")[1].isdigit()
        ]
        epochs[tile_id] = pick_epochs(saved)
        if not source.is_file():
            print(
                f"warning: {source}: montage not found; the report shows no masks for tile {tile_id}", file=sys.stderr
            )
            montages[tile_id] = None
            continue
        target = out_dir / run.name / f"tracked_{_SAFE_NAME.sub('_', tile_id)}.png"
        shutil.copyfile(source, target)
        montages[tile_id] = target.relative_to(out_dir).as_posix()
    return montages, epochs


def build_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    boundary_px: int = DEFAULT_BOUNDARY_PX,
    batch_size: int | None = None,
    json_path: str | Path | None = None,
    log=print,
) -> list[RunReport]:
    """Write ``out_dir/report.md`` (and its PNGs) for the given runs.

    Every run directory and validation folder is checked before any model is loaded, so a bad
    input costs no computation.

    Args:
        run_dirs: training run directories.
        out_dir: created if needed; ``report.md``, ``val_miou_all.png`` and one folder per run.
        boundary_px: half-width of the boundary band (see :func:`boundary_band`).
        batch_size: tiles per model call when scoring (default: each run's training batch size).
        json_path: also write every number to this JSON file.
        log: receives progress lines.

    Returns:
        One :class:`RunReport` per run, in order.

    Raises:
        InputError: a run directory, checkpoint or validation folder is missing or unreadable, or the
            output folder cannot be written.
    """
    if not run_dirs:
        raise InputError("no run directory given")
    if boundary_px < 0:
        raise InputError(f"--boundary-px must be >= 0, got {boundary_px}")
    out_dir = Path(out_dir)
    runs = [load_run(path, name) for path, name in zip(run_dirs, unique_names([Path(p) for p in run_dirs]))]
    require_matplotlib()
    json_folder = Path(json_path).parent if json_path is not None else out_dir
    if not (json_folder.is_dir() or json_folder.resolve() == out_dir.resolve()):
        raise InputError(f"{json_path}: its folder does not exist")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for run in runs:
            (out_dir / run.name).mkdir(exist_ok=True)
    except OSError as err:
        raise InputError(f"{out_dir}: cannot create the report folder ({err.strerror or err})") from None

    from fcn.model.checkpoints import read_checkpoint_state

    tables: dict[tuple, dict] = {}
    reports = []
    for run in runs:
        args = run.args
        key = (
            run.model_name,
            int(args.get("fc1_kernel") or 2),
            float(args.get("dropout") or 0.0),
            float(args.get("width") or 1.0),
        )
        if key not in tables:
            tables[key] = architecture(key[0], fc1_kernel_size=key[1], dropout=key[2], width=key[3])
        log(f"{run.name}: scoring {run.best_checkpoint} on {len(run.val_pairs)} tiles of {run.val_dir}")
        scores = score_checkpoint(
            run.best_checkpoint,
            run.val_pairs,
            batch_size=batch_size or int(args.get("batch_size") or 4),
            boundary_px=boundary_px,
        )
        log(f"{run.name}: mIoU {scores.overall.mean_iou():.4f} ({scores.seconds:.1f} s)")
        curve = out_dir / run.name / "val_miou.png"
        plot_val_miou({run.name: run.history}, curve, f"{run.name} ({run.model_name}): validation mIoU")
        montages, montage_epochs = _copy_montages(run, out_dir)
        reports.append(
            RunReport(
                run,
                tables[key],
                scores,
                read_checkpoint_state(run.best_checkpoint),
                curve.relative_to(out_dir).as_posix(),
                montages,
                montage_epochs,
            )
        )

    plot_val_miou(
        {r.run.name: r.run.history for r in reports}, out_dir / "val_miou_all.png", "validation mIoU per epoch"
    )
    report_path = out_dir / "report.md"
    report_path.write_text(render_markdown(reports, boundary_px))
    log(f"wrote {report_path}")
    if json_path is not None:
        document = {
            "generated": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "boundary_px": boundary_px,
            "report": str(report_path),
            "runs": [r.to_dict() for r in reports],
        }
        Path(json_path).write_text(json.dumps(document, indent=2) + "\n")
        log(f"wrote {json_path}")
    return reports


# ---------------------------------------------------------------- Markdown


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _run_section(report: RunReport) -> list[str]:
    run, scores = report.run, report.scores
    args = run.args
    image_size = args.get("image_size")
    lines = [
        f"## {run.name}" + ("" if run.name == run.model_name else f" ({model_title(run.model_name)})"),
        "",
        f"Run directory `{run.path.resolve()}`; validation folder `{run.val_dir}` ({scores.num_tiles} tiles).",
        f"Trained {len(run.history)} epoch(s) (`--epochs {args.get('epochs')}`), "
        f"{'at ' + str(image_size) + ' px' if image_size else 'at native size'}, "
        f"batch {args.get('batch_size')}, lr {args.get('lr')}, weights `{args.get('weights')}`, "
        f"precision {run.config.get('resolved', {}).get('precision', '?')}, "
        f"training time {_duration(report.training_seconds)}.",
        "",
        f"### Architecture ({model_title(run.model_name)}, input {'x'.join(map(str, SEED_INPUT_SHAPE))})",
        "",
        report.architecture["markdown"],
        "",
        "### Tracked validation tiles",
        "",
        "Satellite tile, ground truth, then the predicted masks of the first, a middle and the last epoch.",
        "",
    ]
    for tile_id, path in report.montages.items():
        epochs = ", ".join(map(str, report.montage_epochs.get(tile_id, [])))
        if path is None:
            lines += [f"**{tile_id}**: montage missing from the run directory.", ""]
        else:
            lines += [f"**{tile_id}** (epochs {epochs})", "", f"![{run.name} tile {tile_id}]({path})", ""]

    best_epoch = report.best_epoch
    recorded = report.best_state.get("val_miou")
    lines += [
        f"### Validation scores of best.keras (epoch {best_epoch})",
        "",
        f"Scored at the tiles' own size, inference at scale {scores.scale:g} (as training validated); "
        f"course rule: pixels pooled over the folder, mean over classes 0-5. mIoU "
        f"**{_fmt(scores.overall.mean_iou())}**"
        + (f" (training recorded {_fmt(float(recorded))} for this epoch)." if recorded is not None else "."),
        "",
        f"Boundary band: pixels within {scores.boundary_px} px of a ground-truth class boundary "
        f"({100 * scores.boundary_fraction:.1f}% of the pixels); interior: all other pixels.",
        "",
        "| class | IoU | IoU near boundaries | IoU interior |",
        "|---|---:|---:|---:|",
    ]
    overall, boundary, interior = scores.overall.iou(), scores.boundary.iou(), scores.interior.iou()
    for c in SCORED_CLASSES:
        lines.append(f"| {c} {CLASS_NAMES[c]} | {_fmt(overall[c])} | {_fmt(boundary[c])} | {_fmt(interior[c])} |")
    lines += [
        f"| **mean IoU** | **{_fmt(scores.overall.mean_iou())}** | {_fmt(scores.boundary.mean_iou())} | "
        f"{_fmt(scores.interior.mean_iou())} |",
        f"| pixel accuracy | {_fmt(scores.overall.pixel_accuracy())} | {_fmt(scores.boundary.pixel_accuracy())} | "
        f"{_fmt(scores.interior.pixel_accuracy())} |",
        "",
    ]
    warning = scores.overall.absence_warning()
    if warning:
        lines += [f"Note: {warning.removeprefix('warning: ')}.", ""]
    lines += [
        "The course tool's output for the same predictions:",
        "",
        "```",
        scores.overall.course_report(warn=False).rstrip("\n"),
        "```",
        "",
        "### Validation mIoU per epoch",
        "",
        f"![{run.name} validation mIoU]({report.curve})",
        "",
    ]
    return lines


def _comparison_table(reports: list[RunReport], boundary_px: int) -> list[str]:
    def row(label, values):
        return f"| {label} | " + " | ".join(values) + " |"

    lines = [
        row("", [f"**{r.run.name}**" for r in reports]),
        "|---|" + "---:|" * len(reports),
        row("model", [r.run.model_name for r in reports]),
        row("parameters (512x512x3)", [f"{r.architecture['total_params']:,}" for r in reports]),
        row("training size", [f"{r.run.args.get('image_size') or 'native'}" for r in reports]),
        row("precision", [str(r.run.config.get("resolved", {}).get("precision", "?")) for r in reports]),
        row("epochs trained", [str(len(r.run.history)) for r in reports]),
        row("best epoch", [str(r.best_epoch) for r in reports]),
        row("training time", [_duration(r.training_seconds) for r in reports]),
        row("validation tiles", [str(r.scores.num_tiles) for r in reports]),
        row("**mIoU (best.keras)**", [f"**{_fmt(r.scores.overall.mean_iou())}**" for r in reports]),
    ]
    for c in SCORED_CLASSES:
        lines.append(row(f"IoU {c} {CLASS_NAMES[c]}", [_fmt(r.scores.overall.iou()[c]) for r in reports]))
    lines += [
        row("pixel accuracy", [_fmt(r.scores.overall.pixel_accuracy()) for r in reports]),
        row(f"mIoU within {boundary_px} px of a boundary", [_fmt(r.scores.boundary.mean_iou()) for r in reports]),
        row("mIoU interior", [_fmt(r.scores.interior.mean_iou()) for r in reports]),
        row(
            f"accuracy within {boundary_px} px of a boundary",
            [_fmt(r.scores.boundary.pixel_accuracy()) for r in reports],
        ),
        row("accuracy interior", [_fmt(r.scores.interior.pixel_accuracy()) for r in reports]),
    ]
    return lines


def model_title(name: str) -> str:
    """``fcn8s`` -> ``FCN8s`` (the paper's spelling)."""
    return name.upper()[:-1] + name[-1] if name.startswith("fcn") else name


# Output stride of each model's finest prediction: where its class edges can be placed.
_OUTPUT_STRIDE = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


def _skip_evidence(reports: list[RunReport], boundary_px: int) -> list[str]:
    """Factual sentences comparing the coarsest and the finest model, when both were run."""
    by_stride = sorted(
        (r for r in reports if r.run.model_name in _OUTPUT_STRIDE), key=lambda r: _OUTPUT_STRIDE[r.run.model_name]
    )
    if len(by_stride) < 2 or by_stride[0].run.model_name == by_stride[-1].run.model_name:
        return []
    fine, coarse = by_stride[0], by_stride[-1]
    fine_name, coarse_name = (
        r.run.name if r.run.name == r.run.model_name else f"{r.run.name} ({r.run.model_name})" for r in (fine, coarse)
    )

    def gap(part):
        return getattr(fine.scores, part).mean_iou() - getattr(coarse.scores, part).mean_iou()

    def acc_gap(part):
        return getattr(fine.scores, part).pixel_accuracy() - getattr(coarse.scores, part).pixel_accuracy()

    lines = [
        "## Skip connections and class boundaries",
        "",
        f"{model_title(coarse.run.model_name)} scores a 1/{_OUTPUT_STRIDE[coarse.run.model_name]} resolution map "
        f"and upsamples it in one step; {model_title(fine.run.model_name)} adds the scores of finer pooling layers "
        f"(skip connections), so its class edges are placed on a 1/{_OUTPUT_STRIDE[fine.run.model_name]} grid. "
        f"Finer edges should help most near ground-truth class boundaries, so that is where its gain should be largest.",
        "",
        f"Measured here, {fine_name} minus {coarse_name}: mIoU {gap('overall'):+.4f} overall, "
        f"{gap('boundary'):+.4f} within {boundary_px} px of a boundary, {gap('interior'):+.4f} in the interior; "
        f"pixel accuracy {acc_gap('boundary'):+.4f} near boundaries, {acc_gap('interior'):+.4f} in the interior.",
        "",
    ]
    boundary_gain, interior_gain = acc_gap("boundary"), acc_gap("interior")
    if not (math.isfinite(boundary_gain) and math.isfinite(interior_gain)):
        return lines
    if boundary_gain > interior_gain:
        verdict = "The accuracy gain is larger near boundaries than in the interior, as finer skip connections predict."
    else:
        verdict = (
            "The accuracy gain is not larger near boundaries than in the interior in these runs, so "
            "they do not support the boundary explanation (short or small runs may not show it)."
        )
    return lines + [verdict, ""]


def render_markdown(reports: list[RunReport], boundary_px: int) -> str:
    """The text of ``report.md``."""
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "# FCN land-cover study report",
        "",
        f"Generated {now} from {len(reports)} run(s): " + ", ".join(f"`{r.run.name}`" for r in reports) + ".",
        "Scores are those of each run's `best.keras` on its validation folder, with the course rule "
        "(NTU DLCV 2018 HW3): IoU per class over all pixels of the folder, mean over classes 0-5.",
        "",
    ]
    for report in reports:
        lines += _run_section(report)
    lines += [
        "## Side by side",
        "",
        *_comparison_table(reports, boundary_px),
        "",
        "![validation mIoU per epoch](val_miou_all.png)",
        "",
        *_skip_evidence(reports, boundary_px),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- command line


def get_args_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="fcn-report",
        description="Write a Markdown study report (architecture tables, tracked-tile montages, per-class IoU "
        "of best.keras on the validation folder, boundary vs interior scores, mIoU curves, side-by-side "
        "table) for one or more training run directories.",
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories made by scripts/train.py"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="report folder: report.md and its PNGs (created)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every number to this JSON file")
    parser.add_argument(
        "--boundary-px",
        type=non_negative_int,
        default=DEFAULT_BOUNDARY_PX,
        metavar="K",
        help=f"pixels within K px of a ground-truth class boundary form the boundary band (default {DEFAULT_BOUNDARY_PX})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="tiles per model call when scoring (default: the run's training batch size)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    build_report(args.runs, args.out, boundary_px=args.boundary_px, batch_size=args.batch_size, json_path=args.json)
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
