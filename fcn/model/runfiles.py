"""The files of a training run directory: the one place that knows their names, reads and writes them.

======================  =====================================================================
``config.json``         :meth:`RunFiles.write_config` / :meth:`RunFiles.read_config`
                        (:func:`fcn.training.config.read_train_config` for the ``TrainConfig``)
``history.csv``         :meth:`RunFiles.append_history` / :meth:`RunFiles.read_history`
``last.keras``,         :attr:`RunFiles.last`, :attr:`RunFiles.best`, :meth:`RunFiles.model_file`
``best.keras``          (written by :func:`fcn.model.checkpoints.save_checkpoint`)
``tracked/``            :meth:`RunFiles.write_tracked` / :meth:`RunFiles.tracked_epochs`
``tensorboard/``        written by Keras's ``TensorBoard`` callback
``data/``               the demo's synthetic tiles (:attr:`RunFiles.demo_data_dir`)
``.lock``               held by :class:`fcn.training.rundir.RunDirectory` while a training runs
======================  =====================================================================

Training, its callbacks, loading models from run directories, the study and the benchmarks all go
through this class. It lives in the model layer so that loading a model from a run directory can
use it too. No TensorFlow is imported here except to record versions.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
import shutil
from pathlib import Path

import numpy as np

import fcn
from fcn.core.errors import InputError
from fcn.core.files import atomic_path, write_text_atomic
from fcn.core.images import write_image_atomic, write_mask
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES

CONFIG_FORMAT = 2  # the layout of config.json; readers accept format 1 as well
IOU_COLUMNS = tuple(f"iou_{CLASS_NAMES[i]}" for i in SCORED_CLASSES)
HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "val_miou", *IOU_COLUMNS, "lr", "seconds")


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _to_float(value) -> float:
    return float("nan") if value in (None, "") else float(value)


class _Member:
    """A file or folder of every run directory: ``RunFiles(path).<member>`` is ``path / name``."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, files: RunFiles | None, owner=None):
        return self if files is None else files.path / self.name


class RunFiles:
    """The files of one run directory (nothing is created until something is written)."""

    config_path = _Member("config.json")
    history_path = _Member("history.csv")
    last = _Member("last.keras")
    best = _Member("best.keras")
    tracked_dir = _Member("tracked")  # ID/epoch_NNN.png masks and ID.png montages
    tensorboard_dir = _Member("tensorboard")
    demo_data_dir = _Member("data")  # the demo's synthetic tiles: train/ and val/
    lock_path = _Member(".lock")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def model_file(self, *, prefer_last: bool = False) -> Path | None:
        """The run's ``best.keras`` (``last.keras`` with ``prefer_last``), else the other; None when neither exists."""
        found = [p for p in ((self.last, self.best) if prefer_last else (self.best, self.last)) if p.is_file()]
        return found[0] if found else None

    def has_completed_epoch(self) -> bool:
        """Whether a first epoch was saved (``last.keras`` exists)."""
        return self.last.exists()

    def clear_partial_run(self) -> None:
        """Remove what a start that never completed an epoch left (history, best checkpoint, tracked masks, logs)."""
        for target in (self.history_path, self.best, self.tracked_dir, self.tensorboard_dir):
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    # ------------------------------------------------------------ config.json

    def write_config(self, args: dict, resolved: dict, *, resumed: bool) -> None:
        """Write ``config.json``: the config, what was resolved at start, versions and start/resume times.

        Args:
            args: the run's ``TrainConfig`` as JSON (:func:`fcn.training.config.config_to_json`).
            resolved: what the run decided from it (precision and why, replicas, tracked ids, class
                weights, absolute data folders, model info).
            resumed: this start continues the run (its time is appended to ``resumed``).
        """
        import keras
        import tensorflow as tf

        previous = self.read_config() if resumed and self.config_path.exists() else {}
        now = _now()
        document = {
            "format": CONFIG_FORMAT,
            "args": args,
            "resolved": resolved,
            "versions": {
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
                "fcn": fcn.__version__,
            },
            "started": previous.get("started", now),
            "resumed": previous.get("resumed", []) + ([now] if resumed else []),
        }
        write_text_atomic(self.config_path, json.dumps(document, indent=2) + "\n")

    def read_config(self) -> dict:
        """``config.json`` as a dict (either format; ``"args"`` and ``"resolved"`` are always there).

        Raises:
            InputError: missing, unreadable, or not a training run's configuration.
        """
        path = self.config_path
        if not path.is_file():
            raise InputError(f"{path}: not found; not a run directory made by fcn-train")
        try:
            document = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise InputError(f"{path}: cannot read the run's configuration ({err})") from None
        if not isinstance(document, dict) or not isinstance(document.get("args"), dict):
            raise InputError(f"{path}: not a training run configuration (no args)")
        if "model" not in document["args"]:
            raise InputError(f"{path}: not a training run configuration (no args.model)")
        document.setdefault("resolved", {})
        document.setdefault("format", 1)
        return document

    def is_run(self) -> bool:
        """Whether the folder holds a training run's ``config.json``."""
        try:
            self.read_config()
        except InputError:
            return False
        return True

    # ------------------------------------------------------------ history.csv

    def append_history(self, row: dict) -> None:
        """Append one epoch's row (keys: :data:`HISTORY_COLUMNS`), flushed to disk before returning."""
        new_file = not self.history_path.exists()
        with open(self.history_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
            if new_file:
                writer.writeheader()
            writer.writerow({key: row.get(key, float("nan")) for key in HISTORY_COLUMNS})
            handle.flush()
            os.fsync(handle.fileno())

    def read_history(self, *, missing_ok: bool = False) -> list[dict]:
        """Rows of ``history.csv``: ``epoch`` as int, every other column as float (nan if empty).

        Args:
            missing_ok: a missing file is no rows (else an error).

        Raises:
            InputError: missing (unless ``missing_ok``) or unreadable file, no ``epoch``/``val_miou``
                column, or a row that is not numbers.
        """
        path = self.history_path
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                columns, raw_rows = reader.fieldnames or [], list(reader)
        except FileNotFoundError:
            if missing_ok:
                return []
            raise InputError(f"{path}: not found; the run has no completed epoch") from None
        except (OSError, csv.Error, UnicodeDecodeError) as err:
            raise InputError(f"{path}: cannot read ({err})") from None
        if raw_rows and ("epoch" not in columns or "val_miou" not in columns):
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

    def truncate_history(self, epochs: int) -> None:
        """Drop rows past ``epochs`` (a crash between an epoch's row and its checkpoint)."""
        rows = [row for row in self.read_history(missing_ok=True) if row["epoch"] <= epochs]
        if not rows:
            self.history_path.unlink(missing_ok=True)
            return
        with atomic_path(self.history_path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def best_val_miou(self) -> float | None:
        """The best finite ``val_miou`` recorded (None when none)."""
        values = [row["val_miou"] for row in self.read_history(missing_ok=True) if math.isfinite(row["val_miou"])]
        return max(values) if values else None

    # ------------------------------------------------------------ tracked/

    def write_tracked(self, tile_id: str, epoch: int, class_map: np.ndarray) -> None:
        """Save one tracked tile's predicted mask of one epoch: ``tracked/ID/epoch_NNN.png``."""
        folder = self.tracked_dir / tile_id
        folder.mkdir(parents=True, exist_ok=True)
        write_mask(folder / f"epoch_{epoch:03d}.png", class_map)

    def tracked_epochs(self, tile_id: str) -> dict[int, Path]:
        """The saved masks of a tracked tile, by epoch."""
        masks = {}
        for path in (self.tracked_dir / tile_id).glob("epoch_*.png"):
            number = path.stem.split("_")[1]
            if number.isdigit():
                masks[int(number)] = path
        return masks

    def tracked_montage(self, tile_id: str) -> Path:
        """Where a tracked tile's montage is: ``tracked/ID.png``."""
        return self.tracked_dir / f"{tile_id}.png"

    def write_tracked_montage(self, tile_id: str, image: np.ndarray) -> None:
        """Save a tracked tile's montage: ``tracked/ID.png``."""
        write_image_atomic(self.tracked_montage(tile_id), image)

    def tracked_ids(self) -> list[str]:
        """Ids with a montage in ``tracked/``."""
        return sorted(p.stem for p in self.tracked_dir.glob("*.png"))
