"""Scoring training runs for the study report: run directories, checkpoints on their validation
folder, and the IoU near class boundaries against the interior.

TensorFlow is imported only to score checkpoints.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation
from skimage.morphology import disk
from skimage.segmentation import find_boundaries

from fcn.core.errors import InputError
from fcn.core.metrics import ConfusionMatrix
from fcn.core.workers import beside
from fcn.data.pairs import find_pairs, read_pairs
from fcn.inference.engine import Predictor
from fcn.model.checkpoints import check_keras_file, load_model
from fcn.model.runfiles import RunFiles
from fcn.training.config import TrainConfig, read_train_config

DEFAULT_BOUNDARY_PX = 3
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------- run directories


@dataclass
class Run:
    """What the report needs from one training run directory.

    Attributes:
        files: the run directory's files.
        name: a unique, file-name-safe label for the run (its folder name).
        config: the run's settings.
        resolved: what the run decided at start (precision, tracked ids...), as recorded.
        history: the history rows, values as floats (``epoch`` as int).
        val_dir: the validation folder the run was scored on.
        val_pairs: its tile/mask pairs (checked by :func:`fcn.data.pairs.find_pairs`).
    """

    files: RunFiles
    name: str
    config: TrainConfig
    resolved: dict
    history: list[dict]
    val_dir: Path
    val_pairs: list = field(repr=False, default_factory=list)

    @property
    def path(self) -> Path:
        return self.files.path

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def tracked_ids(self) -> list[str]:
        ids = self.resolved.get("tracked_ids")
        return [str(i) for i in ids] if ids else self.files.tracked_ids()


def load_run(run_dir: str | Path, name: str | None = None) -> Run:
    """Check a run directory and read what the report needs, without loading any model.

    Args:
        run_dir: a directory made by ``fcn-train``.
        name: label for the run (default: the folder name).

    Returns:
        The :class:`Run`.

    Raises:
        InputError: not a run directory, no best checkpoint, no usable history, or the validation
            folder the run names is gone or holds a bad tile. The message names the path.
    """
    run_dir = Path(run_dir)
    files = RunFiles(run_dir)
    if not run_dir.is_dir() or not files.config_path.is_file():
        raise InputError(f"{run_dir}: not a run directory (no {files.config_path.name}); make one with fcn-train")
    resolved = files.read_config()["resolved"]
    config = read_train_config(run_dir)
    if not files.best.is_file():
        raise InputError(f"{files.best}: not found; the run has no scored epoch to report")
    check_keras_file(files.best)
    history = files.read_history()
    if not history:
        raise InputError(f"{files.history_path}: no epoch recorded")
    named = resolved.get("val_dir") or config.val_dir
    if not named:
        raise InputError(f"{files.config_path}: names no validation folder")
    val_dir = Path.cwd() / named  # a relative folder is relative to where training ran
    if not val_dir.is_dir():
        raise InputError(f"{val_dir}: validation folder named in {files.config_path} is gone")
    return Run(files, name or run_dir.resolve().name, config, resolved, history, val_dir, find_pairs(val_dir))


def unique_names(paths: Sequence[Path]) -> list[str]:
    """File-name-safe labels from the folder names, suffixed ``-2``, ``-3``... when they repeat."""
    names, seen = [], {}
    for path in paths:
        base = _SAFE_NAME.sub("_", Path(path).resolve().name) or "run"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


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
    edges = find_boundaries(labels, connectivity=1, mode="thick")
    if width <= 0 or not edges.any():
        return edges
    return binary_dilation(edges, structure=disk(width))


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


def score_checkpoint(
    checkpoint: str | Path,
    val_pairs,
    *,
    batch_size: int = 4,
    boundary_px: int = DEFAULT_BOUNDARY_PX,
) -> Scores:
    """Score a saved model on validation tiles the way training validated, at the tiles' own size.

    Inference runs at the checkpoint's own scale (:class:`fcn.model.checkpoints.ModelInfo`), as in training.

    Args:
        checkpoint: a ``.keras`` file.
        val_pairs: :class:`fcn.data.pairs.Pair` list of the validation folder.
        batch_size: tiles per model call.
        boundary_px: half-width of the boundary band (see :func:`boundary_band`).

    Returns:
        The :class:`Scores`.

    Raises:
        InputError: the checkpoint cannot be loaded, or a tile cannot be read.
    """
    import keras

    start = time.perf_counter()
    predictor = Predictor(load_model(checkpoint), batch_size=batch_size)
    overall, boundary, interior = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    tiles = ((labels, rgb) for rgb, labels in read_pairs(val_pairs))
    for labels, predicted in beside(predictor.predict_many, tiles):
        near = boundary_band(labels, boundary_px)
        overall.update(labels, predicted)
        boundary.update(labels[near], predicted[near])
        interior.update(labels[~near], predicted[~near])
    scale = predictor.scale
    del predictor
    keras.backend.clear_session()
    return Scores(overall, boundary, interior, boundary_px, len(val_pairs), scale, time.perf_counter() - start)
