"""The files of a training run directory: the one reader and the one writer of each.

======================  =====================================================================
``config.json``         :meth:`RunFiles.write_config` / :meth:`RunFiles.read_config`
                        (:meth:`RunFiles.read_train_config` for the :class:`TrainConfig`)
``history.csv``         :meth:`RunFiles.append_history` / :meth:`RunFiles.read_history`
``last.keras``,         :meth:`RunFiles.save_checkpoint` / :attr:`RunFiles.last`,
``best.keras``          :attr:`RunFiles.best` (read by :mod:`fcn.model.checkpoints`)
``tracked/``            :meth:`RunFiles.write_tracked` / :meth:`RunFiles.tracked_epochs`
``tensorboard/``        written by Keras's ``TensorBoard`` callback
======================  =====================================================================

Training, its callbacks, the study's scoring and the benchmarks all go through this class. No
TensorFlow is imported here except to record versions and to save a checkpoint.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.files import atomic_path, write_text_atomic
from fcn.core.images import write_image_atomic, write_mask
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES
from fcn.training.config import TrainConfig, config_from_json, config_to_json

CONFIG_FORMAT = 2  # 1: the argparse Namespace as "args" (fcn before the subpackages); 2: TrainConfig
IOU_COLUMNS = tuple(f"iou_{CLASS_NAMES[i]}" for i in SCORED_CLASSES)
HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "val_miou", *IOU_COLUMNS, "lr", "seconds")


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _to_float(value) -> float:
    return float("nan") if value in (None, "") else float(value)


class RunFiles:
    """The files of one run directory (nothing is created until something is written)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # ------------------------------------------------------------ names

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def last(self) -> Path:
        return self.path / "last.keras"

    @property
    def best(self) -> Path:
        return self.path / "best.keras"

    @property
    def tracked_dir(self) -> Path:
        return self.path / "tracked"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    # ------------------------------------------------------------ config.json

    def write_config(self, config: TrainConfig, resolved: dict, *, resumed: bool) -> None:
        """Write ``config.json``: the config, what was resolved at start, versions and start/resume times.

        Args:
            config: the run's :class:`TrainConfig`.
            resolved: what the run decided from it (precision and why, replicas, tracked ids, class
                weights, absolute data folders, model info).
            resumed: this start continues the run (its time is appended to ``resumed``).
        """
        import keras
        import tensorflow as tf

        import fcn

        previous = self.read_config() if resumed and self.config_path.exists() else {}
        now = _now()
        document = {
            "format": CONFIG_FORMAT,
            "args": config_to_json(config),
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

    def read_train_config(self) -> TrainConfig:
        """The run's :class:`TrainConfig` (see :func:`fcn.training.config.config_from_json`)."""
        return config_from_json(self.read_config()["args"], self.path)

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

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, model, name: str, state: dict, info) -> None:
        """Write ``last.keras`` or ``best.keras`` atomically, with ``state`` and ``info`` inside."""
        from fcn.model.checkpoints import save_checkpoint

        if name not in ("last", "best"):
            raise ValueError(f"checkpoint name must be last or best, got {name!r}")
        save_checkpoint(model, self.path / f"{name}.keras", state, info)

    # ------------------------------------------------------------ tracked/

    def write_tracked(self, tile_id: str, epoch: int, class_map: np.ndarray) -> None:
        """Save one tracked tile's predicted mask of one epoch: ``tracked/ID/epoch_NNN.png``."""
        folder = self.tracked_dir / tile_id
        folder.mkdir(parents=True, exist_ok=True)
        write_mask(folder / f"epoch_{epoch:03d}.png", class_map)

    def tracked_epochs(self, tile_id: str) -> dict[int, Path]:
        """The saved masks of a tracked tile, by epoch."""
        return {int(p.stem.split("_")[1]): p for p in (self.tracked_dir / tile_id).glob("epoch_*.png")}

    def write_tracked_montage(self, tile_id: str, image: np.ndarray) -> None:
        """Save a tracked tile's montage: ``tracked/ID.png``."""
        write_image_atomic(self.tracked_dir / f"{tile_id}.png", image)

    def tracked_ids(self) -> list[str]:
        """Ids with a montage in ``tracked/``."""
        return sorted(p.stem for p in self.tracked_dir.glob("*.png"))
