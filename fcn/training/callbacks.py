"""Keras callbacks that make up a training run directory (its files are written through
:class:`fcn.model.runfiles.RunFiles`).

Order matters: Keras calls callbacks in list order with one shared ``logs`` dict, and appends its
progress bar last. The trainer's order is :class:`StopControl` (it marks a NaN epoch before anyone
records it), Keras's ``SwapEMAWeights`` when weights are averaged (so that what follows sees the
averaged weights), :class:`EpochValidation` (it adds ``val_miou`` and the rest to ``logs``), then
:class:`HistoryCSV` and ``TensorBoard`` (chief only), which record those logs, and
:class:`RunCheckpoint` last, so that a checkpoint is written only after its epoch's row.
"""

from __future__ import annotations

import logging
import math
import signal
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from fcn.core.figures import montage, pick_epochs
from fcn.core.images import read_rgb
from fcn.core.metrics import ConfusionMatrix
from fcn.core.palette import SCORED_CLASSES, class_to_rgb
from fcn.model.checkpoints import ModelInfo, save_checkpoint
from fcn.model.runfiles import HISTORY_COLUMNS, IOU_COLUMNS, RunFiles
from fcn.training.optimizer import current_learning_rate

log = logging.getLogger(__name__)


class StopControl(keras.callbacks.Callback):
    """Stops cleanly on Ctrl-C / SIGTERM (after the current epoch is saved) and on a NaN loss.

    A first signal lets the running epoch finish, validate and checkpoint; a second one stops at
    once (the previous checkpoint stays). A NaN/inf training loss stops at that batch, and a NaN/inf
    validation loss at the epoch's end; either marks the epoch as bad, so no callback records or
    saves it.
    """

    def __init__(self):
        super().__init__()
        self.stop_requested = False
        self.nan_at: tuple[int, str] | None = None  # (epoch 1-based, what became NaN)
        self._epoch = 0
        self._previous_handlers = {}

    def on_train_begin(self, logs=None):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def on_train_end(self, logs=None):
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    def _on_signal(self, signum, frame):
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        log.warning(
            "\n%s: finishing epoch %d then stopping (send it again to stop now; the last checkpoint is kept)",
            signal.Signals(signum).name,
            self._epoch,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.mark_bad(f"the training loss (batch {batch + 1})")

    def mark_bad(self, what: str) -> None:
        """Stop now and keep this epoch out of the history and the checkpoints."""
        self.nan_at = (self._epoch, what)
        self.model.stop_training = True

    @property
    def epoch_is_bad(self) -> bool:
        return self.nan_at is not None

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_requested:
            self.model.stop_training = True


class EpochValidation(keras.callbacks.Callback):
    """Scores the whole validation folder at the tiles' own size with the course rule every epoch.

    Adds ``val_loss`` (the compiled training loss, with the run's class weights and ignored pixels),
    ``val_miou``, ``val_accuracy`` and one ``iou_<class>`` per scored class to the epoch logs, writes the
    predicted masks of tracked tiles with a montage of them (:meth:`RunFiles.write_tracked`), and logs
    those masks to TensorBoard.

    Args:
        tiles: (id, rgb uint8 (H, W, 3), class map (H, W)) of every validation tile.
        make_predictor: callable(model) -> :class:`fcn.inference.engine.Predictor` used for inference.
        tracked_ids: ids whose masks are saved every epoch.
        files: the run directory's files; None writes nothing (non-chief workers).
        stop: the run's :class:`StopControl`, to skip epochs that ended on a NaN loss.
        tensorboard_dir: where the tracked masks are logged (None: not logged).
        class_weights: the per-class loss weights training uses (None: unweighted).
    """

    def __init__(
        self,
        tiles,
        make_predictor,
        tracked_ids,
        files: RunFiles | None,
        stop: StopControl,
        tensorboard_dir=None,
        class_weights=None,
    ):
        super().__init__()
        self.tiles = tiles
        self.class_weights = None if class_weights is None else np.asarray(class_weights, np.float32)
        self.make_predictor = make_predictor
        self.tracked_ids = list(tracked_ids)
        self.files = files
        self.stop = stop
        self.tensorboard_dir = tensorboard_dir
        self._writer = None
        self._predictor = None  # built once: a new one would retrace its tf.function every epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.stop.epoch_is_bad:
            return
        logs = logs if logs is not None else {}
        if self._predictor is None:
            self._predictor = self.make_predictor(self.model)
        predictor = self._predictor
        confusion = ConfusionMatrix()
        loss_sum, pixels = 0.0, 0
        tracked = {}
        images = [rgb for _, rgb, _ in self.tiles]
        for (tile_id, _, labels), probs in zip(self.tiles, predictor.predict_many(images, probabilities=True)):
            predicted = probs.argmax(-1)
            confusion.update(labels, predicted)
            loss_sum += self._loss(labels, probs) * labels.size
            pixels += labels.size
            if tile_id in self.tracked_ids:
                tracked[tile_id] = predicted.astype(np.uint8)
        iou = confusion.iou()
        logs["val_loss"] = loss_sum / max(pixels, 1)
        if not math.isfinite(logs["val_loss"]):
            self.stop.mark_bad("the validation loss")
            return
        logs["val_miou"] = confusion.mean_iou()
        logs["val_accuracy"] = confusion.pixel_accuracy()
        for column, value in zip(IOU_COLUMNS, iou[list(SCORED_CLASSES)]):
            logs[column] = float(value)
        if self.files is not None:
            self._save_tracked(epoch + 1, tracked)

    def _loss(self, labels: np.ndarray, probs: np.ndarray) -> float:
        """The compiled training loss of one tile, weighted as in training."""
        weights = None if self.class_weights is None else self.class_weights[labels][None]
        return float(self.model.loss(labels[None].astype(np.int32), probs[None], sample_weight=weights))

    def _save_tracked(self, epoch: int, tracked: dict[str, np.ndarray]) -> None:
        by_id = {tile_id: (rgb, labels) for tile_id, rgb, labels in self.tiles}
        for tile_id, class_map in tracked.items():
            self.files.write_tracked(tile_id, epoch, class_map)
            rgb, labels = by_id[tile_id]
            self.files.write_tracked_montage(tile_id, tracked_montage(self.files.tracked_epochs(tile_id), rgb, labels))
        if self.tensorboard_dir and tracked:
            self._log_images(epoch, tracked)

    def _log_images(self, epoch, tracked):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(Path(self.tensorboard_dir) / "validation"))
        with self._writer.as_default():
            for tile_id, class_map in tracked.items():
                tf.summary.image(f"tracked/{tile_id}", class_to_rgb(class_map)[None], step=epoch)
        self._writer.flush()


def tracked_montage(epochs: dict[int, Path], rgb: np.ndarray, labels: np.ndarray, panel_size: int = 256) -> np.ndarray:
    """Satellite tile, ground truth, then the first, a middle and the latest of the saved epoch masks."""
    panels = [("satellite", rgb), ("ground truth", class_to_rgb(labels))]
    panels += [(f"epoch {e}", read_rgb(epochs[e])) for e in pick_epochs(list(epochs))]
    return montage(panels, panel_size=min(panel_size, rgb.shape[0]))


class HistoryCSV(keras.callbacks.Callback):
    """Appends one row per completed epoch to ``history.csv`` and logs a one-line summary.

    Hand-written instead of ``keras.callbacks.CSVLogger``: the run directory promises fixed columns,
    1-based epochs, the learning rate and the epoch's wall time.
    """

    def __init__(self, files: RunFiles, stop: StopControl, total_epochs: int, best_so_far: float = -math.inf):
        super().__init__()
        self.files = files
        self.stop = stop
        self.total_epochs = total_epochs
        self.best = best_so_far
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.stop.epoch_is_bad:
            return
        logs = dict(logs or {})
        row = {
            "epoch": epoch + 1,
            "lr": current_learning_rate(self.model.optimizer),
            "seconds": round(time.perf_counter() - self._start, 2),
            **{key: logs.get(key, float("nan")) for key in HISTORY_COLUMNS if key not in ("epoch", "lr", "seconds")},
        }
        self.files.append_history(row)
        self.best = max(self.best, row["val_miou"]) if math.isfinite(row["val_miou"]) else self.best
        log.info(
            "epoch %d/%d  loss %.4f  val_loss %.4f  val_mIoU %.4f  best %.4f  lr %.2e  %.1f s",
            row["epoch"],
            self.total_epochs,
            row["loss"],
            row["val_loss"],
            row["val_miou"],
            self.best,
            row["lr"],
            row["seconds"],
        )


class RunCheckpoint(keras.callbacks.Callback):
    """Writes ``last.keras`` every epoch and ``best.keras`` when ``val_miou`` improves, atomically.

    Hand-written instead of ``keras.callbacks.ModelCheckpoint``: that one writes in place, so a kill
    mid-write leaves a broken file. Here each file is written to a temporary name in the same folder
    and renamed over the old one; the epoch, the best score and the :class:`fcn.model.checkpoints.ModelInfo`
    travel inside the ``.keras`` zip.

    Args:
        files: the run directory's files; None for non-chief workers, which write (as collective
            saving requires) to a throw-away folder.
        stop: the run's :class:`StopControl`; bad epochs are not saved.
        info: how to use the model (its training scale and ground sample distance).
        best_so_far: the best ``val_miou`` of the epochs already trained (a resumed run).
        best_epoch: the epoch that scored it.
    """

    def __init__(
        self,
        files: RunFiles | None,
        stop: StopControl,
        info: ModelInfo,
        best_so_far: float = -math.inf,
        best_epoch: int | None = None,
    ):
        super().__init__()
        self.files = files
        self.stop = stop
        self.info = info
        self.best = best_so_far
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.stop.epoch_is_bad:
            return
        miou = float((logs or {}).get("val_miou", float("nan")))
        improved = math.isfinite(miou) and miou > self.best
        if improved:
            self.best, self.best_epoch = miou, epoch + 1
        state = {"epoch": epoch + 1, "val_miou": miou, "best_val_miou": self.best, "best_epoch": self.best_epoch}
        if self.files is None:
            with tempfile.TemporaryDirectory() as scratch:
                self.model.save(RunFiles(scratch).last)
            return
        # last.keras first: a kill before best.keras is written leaves last.keras recording this epoch as
        # the best, and resuming copies it to best.keras (fcn.training.resume.load_checkpoint_for_resume).
        save_checkpoint(self.model, self.files.last, state, self.info)
        if improved:
            save_checkpoint(self.model, self.files.best, state, self.info)
