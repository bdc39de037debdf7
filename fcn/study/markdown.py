"""The text of the study report's ``report.md``: one section per run, a side-by-side table and what
the boundary scores say about skip connections."""

from __future__ import annotations

import datetime as dt
import math

from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES
from fcn.model.runfiles import RunFiles
from fcn.study.architecture import SEED_INPUT_SHAPE
from fcn.study.run_report import RunReport, model_title

_BEST = RunFiles.best.name  # the checkpoint the report scores


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _run_section(report: RunReport) -> list[str]:
    run, scores = report.run, report.scores
    settings = run.config
    image_size = settings.image_size
    lines = [
        f"## {run.name}" + ("" if run.name == run.model_name else f" ({model_title(run.model_name)})"),
        "",
        f"Run directory `{run.path.resolve()}`; validation folder `{run.val_dir}` ({scores.num_tiles} tiles).",
        f"Trained {len(run.history)} epoch(s) (`--epochs {settings.epochs}`), "
        f"{'at ' + str(image_size) + ' px' if image_size else 'at native size'}, "
        f"batch {settings.batch_size}, lr {settings.lr}, weights `{settings.weights}`, "
        f"precision {run.resolved.get('precision', '?')}, "
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
    return lines + _scores_section(report)


def _scores_section(report: RunReport) -> list[str]:
    """The per-class scores of best.keras, the course tool's lines and the mIoU curve of one run."""
    run, scores = report.run, report.scores
    best_epoch = report.best_epoch
    recorded = report.best_state.get("val_miou")
    lines = [
        f"### Validation scores of {_BEST} (epoch {best_epoch})",
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
        row("training size", [f"{r.run.config.image_size or 'native'}" for r in reports]),
        row("precision", [str(r.run.resolved.get("precision", "?")) for r in reports]),
        row("epochs trained", [str(len(r.run.history)) for r in reports]),
        row("best epoch", [str(r.best_epoch) for r in reports]),
        row("training time", [_duration(r.training_seconds) for r in reports]),
        row("validation tiles", [str(r.scores.num_tiles) for r in reports]),
        row(f"**mIoU ({_BEST})**", [f"**{_fmt(r.scores.overall.mean_iou())}**" for r in reports]),
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
        f"Scores are those of each run's `{_BEST}` on its validation folder, with the course rule "
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
