"""Continuing a run: its :class:`TrainConfig` back from its configuration, its model from ``last.keras``."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import atomic_path
from fcn.model.checkpoints import read_checkpoint_state
from fcn.model.runfiles import RunFiles
from fcn.training.config import RECIPE_ALIASES, TrainConfig, read_train_config

logger = logging.getLogger(__name__)

# Settings of one invocation that a resumed run may change: how it runs, not what it trains.
RESUME_CHANGEABLE = ("epochs", "verbose", "cache", "jit_compile", "strategy")


def resume_config(run_dir: Path, given: dict | None = None) -> TrainConfig:
    """The config of the run in ``run_dir``, continued with the flags in ``given``.

    ``given`` holds the :class:`TrainConfig` fields the user typed beside ``--resume``. The run keeps its
    own ``epochs`` unless ``epochs`` is given; the fields of :data:`RESUME_CHANGEABLE` are applied (and
    logged); any other field must equal the run's value.

    Raises:
        InputError: not a run directory, no completed epoch, an unreadable ``config.json``, or a flag
            that would change what the run trains (the message names it).
    """
    given = dict(given or {})
    files = RunFiles(run_dir)
    if not files.config_path.is_file():
        raise InputError(f"{files.config_path}: not found; --resume needs a run directory made by fcn-train")
    if not files.last.is_file():
        raise InputError(
            f"{files.last}: not found; no epoch completed, so there is nothing to resume "
            "(start the run again with its original command)"
        )
    config = read_train_config(run_dir)
    changes = _resume_changes(config, given, run_dir)
    return config.replace(**changes, resume=True, demo=False)


def _resume_changes(config: TrainConfig, given: dict, run_dir: Path) -> dict:
    """The fields ``given`` may change on resume; an error naming every flag that may not."""
    given.pop("resume", None)
    if "recipe" in given:
        given["recipe"] = RECIPE_ALIASES.get(given["recipe"], given["recipe"])
    changes = {name: given.pop(name) for name in RESUME_CHANGEABLE if name in given}
    refused = [name for name, value in given.items() if not _same(value, getattr(config, name, None))]
    if refused:
        flags = ", ".join(
            f"{_flag(name)} {_shown(given[name])} (the run's: {_shown(getattr(config, name))})" for name in refused
        )
        allowed = ", ".join(_flag(name) for name in RESUME_CHANGEABLE)
        raise InputError(
            f"--resume {run_dir}: {flags} would change the run; a resumed run keeps its settings (only "
            f"{allowed} may change): leave the flag out, or start a new run with --out"
        )
    # --epochs and --progress are what a resume is for; a runtime flag that changes is said.
    applied = {k: v for k, v in changes.items() if k not in ("epochs", "verbose") and v != getattr(config, k)}
    if applied:
        logger.info("resuming with %s", ", ".join(f"{_flag(k)} {_shown(v)}" for k, v in applied.items()))
    return changes


def _same(value, recorded) -> bool:
    if isinstance(value, Path) or isinstance(recorded, Path):
        return value is not None and recorded is not None and Path(value).resolve() == Path(recorded).resolve()
    if isinstance(recorded, tuple) and value is not None:
        value = tuple(value)
    return value == recorded


def _flag(name: str) -> str:
    return "--progress" if name == "verbose" else "--" + name.replace("_", "-")  # verbose: Keras's progress


def _shown(value) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


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
