"""The study report over training run directories: ``fcn-report RUN_DIR [RUN_DIR ...] --out DIR``.

For each run directory (made by ``fcn-train``) the report shows the architecture table at the seed's
512x512x3 input, the tracked validation tiles learning (the run's montages), the per-class IoU and
mean IoU of ``best.keras`` on the run's validation folder with the course rule (and the course
tool's own output lines), IoU and accuracy near ground-truth class boundaries versus interior
pixels, and the validation mIoU per epoch; then a side-by-side table of all runs.

It reads only the run directories and the validation folder named in each ``config.json``; the
numbers come from :mod:`fcn.study.scoring`, the text from :mod:`fcn.study.markdown`. TensorFlow is
imported only to build the architecture tables and score the checkpoints.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.figures import pick_epochs
from fcn.core.files import is_signature, project_signature, write_bytes_atomic, write_text_atomic
from fcn.core.mark import check_replaceable
from fcn.model.checkpoints import read_checkpoint_state
from fcn.study.architecture import architecture
from fcn.study.curves import history_curve, plot_val_miou, require_matplotlib
from fcn.study.markdown import render_markdown
from fcn.study.run_report import RunReport
from fcn.study.scoring import _SAFE_NAME, DEFAULT_BOUNDARY_PX, Run, load_run, score_checkpoint, unique_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportConfig:
    """What ``fcn-report`` was asked to do.

    Attributes:
        runs: training run directories.
        out: report folder: ``report.md``, ``val_miou_all.png`` and one folder per run (created).
        json: also write every number to this JSON file.
        boundary_px: half-width of the boundary band (see :func:`fcn.study.scoring.boundary_band`).
        batch_size: tiles per model call when scoring (None: each run's training batch size).
        overwrite: replace report files that fcn did not write (refused by default).
    """

    runs: tuple[Path, ...]
    out: Path
    json: Path | None = None
    boundary_px: int = DEFAULT_BOUNDARY_PX
    batch_size: int | None = None
    overwrite: bool = False


REPORT_FILE = "report.md"
ALL_CURVES_FILE = "val_miou_all.png"
RUN_CURVE_FILE = "val_miou.png"


def _is_report_markdown(path: Path) -> bool:
    """Whether ``path`` is a ``report.md`` this project wrote (its first line is the signature comment)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().strip()
    return first.startswith("<!--") and first.endswith("-->") and is_signature(first[4:-3].strip())


def _montage_target(run: Run, out_dir: Path, tile_id: str) -> Path:
    return out_dir / run.name / f"tracked_{_SAFE_NAME.sub('_', tile_id)}.png"


def _check_outputs(runs: list[Run], config: ReportConfig) -> None:
    """Refuse, before any work, to replace a report file that fcn did not write (unless ``overwrite``)."""
    out = config.out
    check_replaceable(out / REPORT_FILE, overwrite=config.overwrite, ours=_is_report_markdown)
    check_replaceable(out / ALL_CURVES_FILE, overwrite=config.overwrite)
    if config.json is not None:
        check_replaceable(config.json, overwrite=config.overwrite, option="--json")
    for run in runs:
        check_replaceable(out / run.name / RUN_CURVE_FILE, overwrite=config.overwrite)
        for tile_id in run.tracked_ids:
            check_replaceable(_montage_target(run, out, tile_id), overwrite=config.overwrite)


def _copy_montages(run: Run, out_dir: Path) -> tuple[dict[str, str | None], dict[str, list[int]]]:
    """Copy ``tracked/ID.png`` into ``out_dir/<run>/``; paths relative to ``out_dir`` (None if missing)."""
    montages, epochs = {}, {}
    for tile_id in run.tracked_ids:
        source = run.files.tracked_montage(tile_id)
        epochs[tile_id] = pick_epochs(list(run.files.tracked_epochs(tile_id)))
        if not source.is_file():
            log.warning("warning: %s: montage not found; the report shows no masks for tile %s", source, tile_id)
            montages[tile_id] = None
            continue
        target = _montage_target(run, out_dir, tile_id)
        write_bytes_atomic(target, source.read_bytes())  # the trainer signed it: the copy carries the mark
        montages[tile_id] = target.relative_to(out_dir).as_posix()
    return montages, epochs


def _load_runs(config: ReportConfig) -> list[Run]:
    """Check every run directory, the JSON folder and every output file before any model loads.

    Raises:
        InputError: a run directory, checkpoint or validation folder is missing or unreadable, or the
            output folder cannot be written.
    """
    if not config.runs:
        raise InputError("no run directory given")
    if config.boundary_px < 0:
        raise InputError(f"--boundary-px must be >= 0, got {config.boundary_px}")
    out_dir = config.out
    runs = [load_run(path, name) for path, name in zip(config.runs, unique_names([Path(p) for p in config.runs]))]
    require_matplotlib()
    json_folder = config.json.parent if config.json is not None else out_dir
    if not (json_folder.is_dir() or json_folder.resolve() == out_dir.resolve()):
        raise InputError(f"{config.json}: its folder does not exist")
    _check_outputs(runs, config)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for run in runs:
            (out_dir / run.name).mkdir(exist_ok=True)
    except OSError as err:
        raise InputError(f"{out_dir}: cannot create the report folder ({err.strerror or err})") from None
    return runs


def _report_run(run: Run, config: ReportConfig, tables: dict[tuple, dict]) -> RunReport:
    """Score one run's best.keras, draw its curve and copy its montages; ``tables`` caches architectures."""
    settings = run.config
    key = (settings.model, settings.fc1_kernel, settings.dropout, settings.width)
    if key not in tables:
        tables[key] = architecture(key[0], fc1_kernel_size=key[1], dropout=key[2], width=key[3])
    log.info("%s: scoring %s on %d tiles of %s", run.name, run.files.best, len(run.val_pairs), run.val_dir)
    scores = score_checkpoint(
        run.files.best,
        run.val_pairs,
        batch_size=config.batch_size or settings.batch_size,
        boundary_px=config.boundary_px,
    )
    log.info("%s: mIoU %.4f (%.1f s)", run.name, scores.overall.mean_iou(), scores.seconds)
    curve = config.out / run.name / RUN_CURVE_FILE
    plot_val_miou({run.name: [history_curve(run.history)]}, curve, f"{run.name} ({run.model_name}): validation mIoU")
    montages, montage_epochs = _copy_montages(run, config.out)
    return RunReport(
        run,
        tables[key],
        scores,
        read_checkpoint_state(run.files.best),
        curve.relative_to(config.out).as_posix(),
        montages,
        montage_epochs,
    )


def build_report(config: ReportConfig) -> list[RunReport]:
    """Write ``report.md`` (and its PNGs, and the JSON with ``config.json``) for the configured runs.

    Every run directory and validation folder is checked before any model is loaded, so a bad
    input costs no computation.

    Returns:
        One :class:`RunReport` per run, in order.

    Raises:
        InputError: see :func:`_load_runs`.
    """
    runs = _load_runs(config)
    tables: dict[tuple, dict] = {}
    reports = [_report_run(run, config, tables) for run in runs]
    out_dir = config.out
    plot_val_miou(
        {r.run.name: [history_curve(r.run.history)] for r in reports},
        out_dir / ALL_CURVES_FILE,
        "validation mIoU per epoch",
    )
    report_path = out_dir / REPORT_FILE
    signature = f"<!-- {project_signature()} -->\n"
    write_text_atomic(report_path, signature + render_markdown(reports, config.boundary_px))
    log.info("wrote %s", report_path)
    if config.json is not None:
        document = {
            "generated": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "boundary_px": config.boundary_px,
            "report": str(report_path),
            "runs": [r.to_dict() for r in reports],
            "written_by": project_signature(),
        }
        write_text_atomic(config.json, json.dumps(document, indent=2) + "\n")
        log.info("wrote %s", config.json)
    return reports
