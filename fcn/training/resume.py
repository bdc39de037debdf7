"""Continuing a run: its :class:`TrainConfig` back from ``config.json``, its model from ``last.keras``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import atomic_path
from fcn.model.checkpoints import read_checkpoint_state
from fcn.training.config import TrainConfig
from fcn.training.runfiles import RunFiles


def resume_config(run_dir: Path, *, epochs: int, verbose: int) -> TrainConfig:
    """The config of the run in ``run_dir``, to be trained up to ``epochs``.

    Raises:
        InputError: not a run directory, no completed epoch, or an unreadable ``config.json``.
    """
    files = RunFiles(run_dir)
    if not files.config_path.is_file():
        raise InputError(f"{files.config_path}: not found; --resume needs a run directory made by fcn-train")
    if not files.last.is_file():
        raise InputError(
            f"{files.last}: not found; no epoch completed, so there is nothing to resume "
            "(start the run again with its original command)"
        )
    return files.read_train_config().replace(epochs=epochs, verbose=verbose, resume=True, demo=False)


def load_checkpoint_for_resume(run_dir: str | Path):
    """Load a run's ``last.keras`` with its optimizer state to continue training.

    Also repairs what a kill between the two checkpoint writes of one epoch can leave: ``best.keras``
    missing or older than the best epoch that ``last.keras`` records (that epoch is then the one
    ``last.keras`` holds, so it is copied).

    Returns:
        (compiled model, state dict of :func:`fcn.model.checkpoints.read_checkpoint_state`).

    Raises:
        InputError: ``last.keras`` is damaged or cannot be loaded (the message says what to do).
    """
    import keras

    from fcn.model import builders, losses  # noqa: F401  (register the objects the checkpoint uses)

    files = RunFiles(run_dir)
    last, best = files.last, files.best
    try:
        state = read_checkpoint_state(last)
        model = keras.saving.load_model(last)
    except Exception as err:  # a damaged zip, or a file Keras cannot read
        fallback = (
            f"; {best.name} holds epoch {read_checkpoint_state(best).get('epoch', '?')}" if _readable(best) else ""
        )
        raise InputError(
            f"{last}: damaged, cannot resume from it ({err.__class__.__name__}){fallback}; "
            f"replace it (e.g. copy {best.name} over it) to resume from an earlier epoch"
        ) from None
    best_epoch = state.get("best_epoch")
    best_is_last = best_epoch is not None and best_epoch == state.get("epoch")
    if best_is_last and (not _readable(best) or read_checkpoint_state(best).get("epoch") != best_epoch):
        with atomic_path(best) as tmp:
            shutil.copyfile(last, tmp)
    return model, state


def _readable(path: Path) -> bool:
    try:
        read_checkpoint_state(path)
        return True
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
