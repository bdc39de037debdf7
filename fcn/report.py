"""The study report: ``scripts/report.py RUN_DIR [RUN_DIR ...] --out DIR``.

For each training run directory (made by ``scripts/train.py``) the report shows the architecture
table at the seed's 512x512x3 input, the tracked validation tiles learning (the run's montages), the
per-class IoU and mean IoU of ``best.keras`` on the run's validation folder with the course rule
(and the course tool's own output lines), IoU and accuracy near ground-truth class boundaries
versus interior pixels, and the validation mIoU per epoch; then a side-by-side table of all runs.

It reads only the run directories and the validation folder named in each ``config.json``.
TensorFlow is imported only to build the architecture tables and score the checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import re
import shutil
import sys
import time
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import InputError, run_cli
from .metrics import ConfusionMatrix
from .palette import CLASS_NAMES, SCORED_CLASSES

# The input the course seed prints its architecture table at.
SEED_INPUT_SHAPE = (512, 512, 3)
DEFAULT_BOUNDARY_PX = 3
# Validation tiles decoded ahead of the model: bounds memory on large folders.
_TILES_PER_CHUNK = 16
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------- run directories


@dataclass
class Run:
    """What the report needs from one training run directory.

    Attributes:
        path: the run directory.
        name: a unique, file-name-safe label for the run (its folder name).
        config: ``config.json`` as saved by training.
        history: ``history.csv`` rows, values as floats (``epoch`` as int).
        val_dir: the validation folder the run was scored on.
        val_pairs: its tile/mask pairs (checked by :func:`fcn.data.find_pairs`).
    """

    path: Path
    name: str
    config: dict
    history: list[dict]
    val_dir: Path
    val_pairs: list = field(repr=False, default_factory=list)

    @property
    def args(self) -> dict:
        return self.config.get("args", {})

    @property
    def model_name(self) -> str:
        return str(self.args.get("model", "?"))

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.keras"

    @property
    def tracked_ids(self) -> list[str]:
        ids = self.config.get("resolved", {}).get("tracked_ids")
        if ids:
            return [str(i) for i in ids]
        return sorted(p.stem for p in (self.path / "tracked").glob("*.png"))


def read_history(path: str | Path) -> list[dict]:
    """Rows of a run's ``history.csv``: ``epoch`` as int, every other column as float (nan if empty).

    Raises:
        InputError: missing or unreadable file, or no ``epoch``/``val_miou`` column.
    """
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            raw_rows = list(reader)
    except FileNotFoundError:
        raise InputError(f"{path}: not found; the run has no completed epoch") from None
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    if "epoch" not in fields or "val_miou" not in fields:
        raise InputError(f"{path}: not a training history (needs epoch and val_miou columns)")
    rows = []
    for number, raw in enumerate(raw_rows, start=2):
        try:
            row = {key: _to_float(value) for key, value in raw.items() if key is not None}
            row["epoch"] = int(row["epoch"])
        except (TypeError, ValueError):
            raise InputError(f"{path}: line {number} is not a row of numbers") from None
        rows.append(row)
    return rows


def _to_float(value) -> float:
    return float("nan") if value in (None, "") else float(value)


def load_run(run_dir: str | Path, name: str | None = None) -> Run:
    """Check a run directory and read what the report needs, without loading any model.

    Args:
        run_dir: a directory made by ``scripts/train.py``.
        name: label for the run (default: the folder name).

    Returns:
        The :class:`Run`.

    Raises:
        InputError: not a run directory, no ``best.keras``, no usable history, or the validation
            folder named in ``config.json`` is gone or holds a bad tile. The message names the path.
    """
    from .data import find_pairs

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not run_dir.is_dir() or not config_path.is_file():
        raise InputError(f"{run_dir}: not a run directory (no config.json); make one with scripts/train.py")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{config_path}: cannot read run configuration ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("args"), dict) or "model" not in config["args"]:
        raise InputError(f"{config_path}: not a training run configuration (no args.model)")
    checkpoint = run_dir / "best.keras"
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: not found; the run has no scored epoch to report")
    if not _looks_like_keras_file(checkpoint):
        raise InputError(f"{checkpoint}: not a readable .keras file (truncated or corrupt?)")
    history = read_history(run_dir / "history.csv")
    if not history:
        raise InputError(f"{run_dir / 'history.csv'}: no epoch recorded")

    named = config.get("resolved", {}).get("val_dir") or config["args"].get("val_dir")
    if not named:
        raise InputError(f"{config_path}: names no validation folder")
    val_dir = Path(named)
    if not val_dir.is_absolute():  # older configs: relative to where training ran
        val_dir = Path.cwd() / val_dir
    if not val_dir.is_dir():
        raise InputError(f"{val_dir}: validation folder named in {config_path} is gone")
    val_pairs = find_pairs(val_dir)
    return Run(run_dir, name or run_dir.resolve().name, config, history, val_dir, val_pairs)


def _looks_like_keras_file(path: Path) -> bool:
    """A cheap check (no TensorFlow) that a .keras zip is complete: its directory and config are there."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def unique_names(paths: Sequence[Path]) -> list[str]:
    """File-name-safe labels from the folder names, suffixed ``-2``, ``-3``... when they repeat."""
    names, seen = [], {}
    for path in paths:
        base = _SAFE_NAME.sub("_", Path(path).resolve().name) or "run"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


# ---------------------------------------------------------------- architecture


def architecture(model_name: str, *, fc1_kernel_size: int = 2, dropout: float = 0.0) -> dict:
    """The seed-style architecture table of a model at the seed's 512x512x3 input.

    Args:
        model_name: ``fcn32s``, ``fcn16s`` or ``fcn8s``.
        fc1_kernel_size, dropout: the run's ``--fc1-kernel`` and ``--dropout``.

    Returns:
        dict with ``markdown`` (the table and totals), ``total_params``, ``trainable_params`` and
        ``input_shape``.
    """
    import keras

    from .models import build_model, format_summary

    model = build_model(model_name, input_shape=SEED_INPUT_SHAPE, weights=None,
                        fc1_kernel_size=fc1_kernel_size, dropout=dropout)
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


# ---------------------------------------------------------------- scoring


def boundary_band(labels: np.ndarray, width: int = DEFAULT_BOUNDARY_PX) -> np.ndarray:
    """Pixels near a ground-truth class boundary.

    Boundary pixels are those with a 4-neighbour of another class
    (``skimage.segmentation.find_boundaries``, mode ``thick``, so both sides of an edge); the band is
    those pixels dilated by a disk of radius ``width``, i.e. every pixel within ``width`` px of one.

    Args:
        labels: (H, W) ground-truth class map.
        width: band half-width in pixels (0: the boundary pixels only).

    Returns:
        (H, W) bool mask, True near a boundary.
    """
    from scipy.ndimage import binary_dilation
    from skimage.morphology import disk
    from skimage.segmentation import find_boundaries

    edges = find_boundaries(labels, connectivity=1, mode="thick")
    if width <= 0 or not edges.any():
        return edges
    return binary_dilation(edges, structure=disk(width))


def validation_scale(image_size: int | None, tile_shape: tuple[int, ...]) -> float:
    """The scale training validated at: ``--image-size`` over the tile side (1 without it).

    Same rule as :func:`fcn.train.validation_predictor`.
    """
    if not image_size:
        return 1.0
    return float(image_size) / max(tile_shape[:2])


@dataclass
class Scores:
    """Confusion matrices of one checkpoint on one validation folder.

    Attributes:
        overall: every pixel (the course's score).
        boundary: pixels within ``boundary_px`` of a ground-truth class boundary.
        interior: the other pixels.
        boundary_px: the band half-width.
        num_tiles: validation tiles scored.
        scale: inference scale used.
        seconds: wall time of the scoring.
    """

    overall: ConfusionMatrix
    boundary: ConfusionMatrix
    interior: ConfusionMatrix
    boundary_px: int
    num_tiles: int
    scale: float
    seconds: float

    @property
    def boundary_fraction(self) -> float:
        return self.boundary.num_pixels / max(self.overall.num_pixels, 1)

    def to_dict(self) -> dict:
        return {
            "num_tiles": self.num_tiles,
            "scale": self.scale,
            "seconds": round(self.seconds, 2),
            "boundary_px": self.boundary_px,
            "boundary_pixel_fraction": self.boundary_fraction,
            "overall": self.overall.to_dict(),
            "boundary": self.boundary.to_dict(),
            "interior": self.interior.to_dict(),
        }


def _decoded_tiles(pairs, pool: ThreadPoolExecutor) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgb, class map) of each pair in order, decoding a chunk ahead in the thread pool."""
    from .images import read_mask, read_rgb

    def decode(pair):
        rgb, labels = read_rgb(pair.image_path), read_mask(pair.mask_path)
        if rgb.shape[:2] != labels.shape:
            raise InputError(f"{pair.mask_path}: mask is {labels.shape[1]}x{labels.shape[0]}, image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
        return rgb, labels

    for start in range(0, len(pairs), _TILES_PER_CHUNK):
        yield from pool.map(decode, pairs[start : start + _TILES_PER_CHUNK])


def score_checkpoint(
    checkpoint: str | Path,
    val_pairs,
    *,
    image_size: int | None = None,
    batch_size: int = 4,
    boundary_px: int = DEFAULT_BOUNDARY_PX,
) -> Scores:
    """Score a saved model on validation tiles the way training validated, at the tiles' own size.

    Args:
        checkpoint: a ``.keras`` file.
        val_pairs: :class:`fcn.data.Pair` list of the validation folder.
        image_size: the run's ``--image-size`` (inference runs at ``image_size / tile side``).
        batch_size: tiles per model call.
        boundary_px: half-width of the boundary band (see :func:`boundary_band`).

    Returns:
        The :class:`Scores`.

    Raises:
        InputError: the checkpoint cannot be loaded, or a tile cannot be read.
    """
    import keras

    from .images import image_size as header_size
    from .predict import Predictor, load_model

    start = time.perf_counter()
    model = load_model(checkpoint)
    scale = validation_scale(image_size, header_size(val_pairs[0].image_path))
    predictor = Predictor(model, scale=scale, batch_size=batch_size)
    overall, boundary, interior = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    ground_truth: deque = deque()  # labels of the tiles handed to the predictor, in order

    with ThreadPoolExecutor(max_workers=2) as pool:

        def images():
            for rgb, labels in _decoded_tiles(val_pairs, pool):
                ground_truth.append(labels)
                yield rgb

        for predicted in predictor.predict_many(images()):
            labels = ground_truth.popleft()
            near = boundary_band(labels, boundary_px)
            overall.update(labels, predicted)
            boundary.update(labels[near], predicted[near])
            interior.update(labels[~near], predicted[~near])
    del predictor, model
    keras.backend.clear_session()
    return Scores(overall, boundary, interior, boundary_px, len(val_pairs), scale, time.perf_counter() - start)


# ---------------------------------------------------------------- figures


def require_matplotlib():
    """Import matplotlib with the Agg backend; InputError with the install hint when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("matplotlib is needed for the curves: pip install 'fcn[report]' (or pip install matplotlib)") from None
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
        return _json_ready({
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
        })


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
    from .figures import pick_epochs

    montages, epochs = {}, {}
    for tile_id in run.tracked_ids:
        source = run.path / "tracked" / f"{tile_id}.png"
        saved = [int(p.stem.split("_")[1]) for p in (run.path / "tracked" / tile_id).glob("epoch_*.png")
                 if p.stem.split("_")[1].isdigit()]
        epochs[tile_id] = pick_epochs(saved)
        if not source.is_file():
            print(f"warning: {source}: montage not found; the report shows no masks for tile {tile_id}", file=sys.stderr)
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

    from .callbacks import read_checkpoint_state

    tables: dict[tuple, dict] = {}
    reports = []
    for run in runs:
        args = run.args
        key = (run.model_name, int(args.get("fc1_kernel") or 2), float(args.get("dropout") or 0.0))
        if key not in tables:
            tables[key] = architecture(key[0], fc1_kernel_size=key[1], dropout=key[2])
        log(f"{run.name}: scoring {run.best_checkpoint} on {len(run.val_pairs)} tiles of {run.val_dir}")
        scores = score_checkpoint(
            run.best_checkpoint, run.val_pairs, image_size=args.get("image_size"),
            batch_size=batch_size or int(args.get("batch_size") or 4), boundary_px=boundary_px,
        )
        log(f"{run.name}: mIoU {scores.overall.mean_iou():.4f} ({scores.seconds:.1f} s)")
        curve = out_dir / run.name / "val_miou.png"
        plot_val_miou({run.name: run.history}, curve, f"{run.name} ({run.model_name}): validation mIoU")
        montages, montage_epochs = _copy_montages(run, out_dir)
        reports.append(RunReport(run, tables[key], scores, read_checkpoint_state(run.best_checkpoint),
                                 curve.relative_to(out_dir).as_posix(), montages, montage_epochs))

    plot_val_miou({r.run.name: r.run.history for r in reports}, out_dir / "val_miou_all.png",
                  "validation mIoU per epoch")
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
        row(f"accuracy within {boundary_px} px of a boundary", [_fmt(r.scores.boundary.pixel_accuracy()) for r in reports]),
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
    by_stride = sorted((r for r in reports if r.run.model_name in _OUTPUT_STRIDE), key=lambda r: _OUTPUT_STRIDE[r.run.model_name])
    if len(by_stride) < 2 or by_stride[0].run.model_name == by_stride[-1].run.model_name:
        return []
    fine, coarse = by_stride[0], by_stride[-1]
    fine_name, coarse_name = (r.run.name if r.run.name == r.run.model_name else f"{r.run.name} ({r.run.model_name})"
                              for r in (fine, coarse))

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
        verdict = ("The accuracy gain is larger near boundaries than in the interior, as finer skip "
                   "connections predict.")
    else:
        verdict = ("The accuracy gain is not larger near boundaries than in the interior in these runs, so "
                   "they do not support the boundary explanation (short or small runs may not show it).")
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
    parser = argparse.ArgumentParser(
        prog="fcn-report",
        description="Write a Markdown study report (architecture tables, tracked-tile montages, per-class IoU "
        "of best.keras on the validation folder, boundary vs interior scores, mIoU curves, side-by-side "
        "table) for one or more training run directories.",
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories made by scripts/train.py")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder: report.md and its PNGs (created)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every number to this JSON file")
    parser.add_argument("--boundary-px", type=int, default=DEFAULT_BOUNDARY_PX, metavar="K",
                        help=f"pixels within K px of a ground-truth class boundary form the boundary band (default {DEFAULT_BOUNDARY_PX})")
    parser.add_argument("--batch-size", type=int, metavar="N", help="tiles per model call when scoring (default: the run's training batch size)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    build_report(args.runs, args.out, boundary_px=args.boundary_px, batch_size=args.batch_size, json_path=args.json)
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
