"""Training a run: :func:`train` takes a :class:`fcn.training.config.TrainConfig` (``fcn-train`` makes one).

A run directory holds everything a run produces (:class:`fcn.model.runfiles.RunFiles`): its
configuration, history, checkpoints, tracked masks and montages, and TensorBoard logs. It is locked
(an OS lock) while a training writes to it (:class:`fcn.training.rundir.RunDirectory`).

Every check a user mistake can fail runs before TensorFlow is imported: both data folders (every
tile fully decoded), the weights file, the run directory.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from fcn.core.images import image_size
from fcn.data.pipeline import make_dataset
from fcn.model import runtime
from fcn.model.checkpoints import ModelInfo, training_scale
from fcn.model.precision import choose_precision
from fcn.model.runfiles import RunFiles
from fcn.training.build import build_training_model, ema_callbacks, steps_per_epoch, validation_predictor
from fcn.training.config import TrainConfig, config_to_json
from fcn.training.inputs import check_weights_path, class_weights_for, load_data, make_demo_data
from fcn.training.resume import load_checkpoint_for_resume
from fcn.training.rundir import RunDirectory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSetup:
    """What a run decided at start from its config, recorded in its configuration under ``"resolved"``."""

    policy: str
    precision_reason: str
    replicas: int
    tracked_ids: list[str]
    class_weights: list[float] | None
    info: object  # fcn.model.checkpoints.ModelInfo

    def to_json(self, config: TrainConfig) -> dict:
        return {
            "precision": self.policy,
            # Why --precision resolved to this policy (the flag, the CPU's instructions or a measured probe).
            "precision_reason": self.precision_reason,
            "replicas": self.replicas,
            "tracked_ids": self.tracked_ids,
            "class_weights": self.class_weights,
            "train_dir": str(Path(config.train_dir).resolve()),
            "val_dir": str(Path(config.val_dir).resolve()),
            "model_info": self.info.to_dict(),
        }


def _default_run_dir(config: TrainConfig) -> Path:
    """``runs/<model>-<time>`` (``runs/demo-<time>`` for the demo)."""
    return Path(f"runs/{'demo' if config.demo else config.model}-{dt.datetime.now():%Y%m%d-%H%M%S}")


def train(config: TrainConfig) -> int:
    """Run (or, with ``config.resume``, continue) a training run. Returns the exit code.

    Raises:
        InputError: a bad data folder, weights file or run directory (before anything is written).
    """
    config = config.replace(out=config.out or _default_run_dir(config))
    check_weights_path(config.weights)
    # Before any TensorFlow op (the data check decodes JPEGs): multi-worker collectives are configured
    # when the strategy is made, and only at program start-up.
    strategy = runtime.make_strategy(config.strategy)
    make_demo = config.demo and not config.resume
    data = None if make_demo else load_data(config)  # checked before any directory is made
    with RunDirectory(config.out, resume=config.resume, chief=runtime.is_chief()) as run:
        if make_demo:
            config = make_demo_data(config, run.path)
            data = load_data(config)
        return _train(config, strategy, RunFiles(run.path) if run.chief else None, *data)


def _setup(config: TrainConfig, strategy, train_pairs, tracked_ids) -> RunSetup:
    info = ModelInfo(
        model=config.model,
        train_scale=training_scale(config.image_size, max(image_size(train_pairs[0].image_path))),
        tile_gsd=config.gsd,
    )
    choice = choose_precision(config.precision)
    return RunSetup(
        policy=choice.policy,
        precision_reason=choice.reason,
        replicas=strategy.num_replicas_in_sync,
        tracked_ids=tracked_ids,
        class_weights=class_weights_for(config, train_pairs),
        info=info,
    )


def _train(config: TrainConfig, strategy, files: RunFiles | None, train_pairs, val_tiles, tracked_ids) -> int:
    import keras

    keras.utils.set_random_seed(config.seed)
    setup = _setup(config, strategy, train_pairs, tracked_ids)
    initial_epoch, best, best_epoch = 0, -math.inf, None
    with strategy.scope():
        if config.resume:
            model, state = load_checkpoint_for_resume(config.out)
            initial_epoch, best = int(state.get("epoch", 0)), float(state.get("best_val_miou", -math.inf))
            best_epoch = state.get("best_epoch")
        else:
            epoch_steps = steps_per_epoch(len(train_pairs), config.batch_size)
            model = build_training_model(config, setup.policy, epoch_steps)
    if files is not None:
        files.truncate_history(initial_epoch)
        files.write_config(config_to_json(config), setup.to_json(config), resumed=config.resume)
    if initial_epoch >= config.epochs:
        log.info(
            "%s: already trained for %d epochs (--epochs %d); nothing to do", config.out, initial_epoch, config.epochs
        )
        return 0
    train_ds = _training_dataset(config, train_pairs, setup.class_weights)
    if runtime.is_multiworker(strategy):
        runtime.patch_keras_for_multiworker(model, next(iter(train_ds)))
    callbacks, stop, checkpoint = _callbacks(config, files, model, setup, val_tiles, (best, best_epoch))
    log.info(
        "training %s on %d tiles, validating on %d at scale %g; precision %s (%s), %d replica(s); run directory %s",
        config.model,
        len(train_pairs),
        len(val_tiles),
        setup.info.train_scale,
        setup.policy,
        setup.precision_reason,
        setup.replicas,
        config.out,
    )
    # The dataset shuffles itself.
    model.fit(
        train_ds,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=config.verbose,
        shuffle=False,
    )
    return _report_end(config, files, stop, checkpoint)


def _training_dataset(config: TrainConfig, train_pairs, class_weights):
    return make_dataset(
        train_pairs,
        batch_size=config.batch_size,
        training=True,
        image_size=config.image_size,
        crop=config.crop,
        scale_range=config.scale_aug,
        seed=config.seed,
        cache=config.cache,
        color_jitter=config.color_aug,
        class_weights=class_weights,
    )


def _callbacks(config: TrainConfig, files: RunFiles | None, model, setup: RunSetup, val_tiles, best):
    """The run's callbacks in the order they must run (see :mod:`fcn.training.callbacks`)."""
    import keras

    from fcn.training.callbacks import EpochValidation, HistoryCSV, RunCheckpoint, StopControl

    stop = StopControl()
    tensorboard_dir = files.tensorboard_dir if files is not None else None
    validation = EpochValidation(
        val_tiles,
        lambda m: validation_predictor(m, setup.info, config.batch_size),
        setup.tracked_ids,
        files,
        stop,
        tensorboard_dir,
        class_weights=setup.class_weights,
    )
    checkpoint = RunCheckpoint(files, stop, setup.info, *best)
    callbacks = [stop, *ema_callbacks(model, resumed=config.resume), validation]
    if files is not None:
        callbacks += [
            HistoryCSV(files, stop, config.epochs, best[0]),
            keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False, update_freq="epoch"),
        ]
    callbacks.append(checkpoint)
    return callbacks, stop, checkpoint


def _report_end(config: TrainConfig, files: RunFiles | None, stop, checkpoint) -> int:
    if stop.nan_at:
        epoch, where = stop.nan_at
        log.error(
            "error: %s became NaN/inf in epoch %d; stopped without saving that epoch. The last good "
            "checkpoint is %s (lower --lr, or check the data)",
            where,
            epoch,
            RunFiles(config.out).last,
        )
        return 1
    done = len(files.read_history(missing_ok=True)) if files is not None else config.epochs
    if stop.stop_requested and done < config.epochs:
        log.info("stopped after epoch %d; continue with: python scripts/train.py --resume %s", done, config.out)
        return 0
    log.info("done: best val mIoU %.4f; checkpoints in %s", checkpoint.best, config.out)
    return 0
