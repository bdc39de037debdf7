"""What a run trains and validates on: its data folders (checked up front), tracked ids, class weights.

Everything here runs before TensorFlow is imported, so that a bad folder or file is one line naming it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fcn.core.errors import InputError
from fcn.core.jpeg_check import refuse_damaged_jpegs as refuse
from fcn.core.palette import UNKNOWN
from fcn.data.balance import class_pixel_counts, median_frequency_weights
from fcn.data.integrity import tf_decode
from fcn.data.pairs import TRACKED_VAL_IDS, Pair, find_pairs, read_pairs
from fcn.data.synthetic import make_synthetic_dataset
from fcn.model.runfiles import RunFiles
from fcn.training.config import DEMO_DATA, TrainConfig

log = logging.getLogger(__name__)

# The loss weight of Unknown pixels under --no-ignore-unknown with class balancing: the weight of a
# class at the median frequency. Its own median-frequency weight would be large (Unknown is rare),
# pulling the model towards clouds and no-data, which are not scored; 0 would ignore them after all.
UNKNOWN_WEIGHT = 1.0


def check_weights_path(weights: str) -> None:
    """Refuse a ``--weights`` file that does not exist."""
    if weights.lower() not in ("imagenet", "none") and not Path(weights).is_file():
        raise InputError(f"{weights}: --weights file not found (or use imagenet / none)")


def make_demo_data(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """Write the demo's synthetic tiles into the run directory; the config then trains on them."""
    folder = RunFiles(run_dir).demo_data_dir
    train_dir, val_dir = make_synthetic_dataset(folder, seed=config.seed, **DEMO_DATA)
    log.info("demo: synthetic tiles in %s", folder)
    return config.replace(train_dir=Path(train_dir), val_dir=Path(val_dir))


def load_data(config: TrainConfig):
    """Validate both folders (every training file fully decoded) and decode the validation tiles.

    Returns:
        (training pairs, [(id, rgb, class map)] of validation tiles, tracked ids)

    Raises:
        InputError: no folders given, or a bad folder or file (named).
    """
    if not (config.train_dir and config.val_dir):
        raise InputError("--train-dir and --val-dir are required (or --demo, or --resume RUN_DIR)")
    train_pairs = find_pairs(config.train_dir, check_pixels=True)
    val_pairs = find_pairs(config.val_dir)
    refuse_damaged_jpegs([pair.image_path for pair in train_pairs + val_pairs])
    val_tiles = [(pair.id, rgb, labels) for pair, (rgb, labels) in zip(val_pairs, read_pairs(val_pairs))]
    tracked = _pick_tracked_ids(config.track, [tile[0] for tile in val_tiles], config.val_dir)
    return train_pairs, val_tiles, tracked


def refuse_damaged_jpegs(paths) -> None:
    """Refuse JPEGs that decode only with libjpeg's corruption warnings (their grey would be learned).

    Raises:
        InputError: one line naming the first such file, its warning, and how many more there are.
    """
    refuse(paths, tf_decode)


def _pick_tracked_ids(track, val_ids: list[str], val_dir) -> list[str]:
    """Requested ids that exist; the defaults fall back to the first validation ids.

    Raises:
        InputError: an id given explicitly is not in the validation folder.
    """
    wanted = [track_id.strip() for track_id in track.split(",")] if isinstance(track, str) else list(track)
    wanted = [track_id for track_id in wanted if track_id]
    if wanted == list(TRACKED_VAL_IDS):
        present = [track_id for track_id in wanted if track_id in val_ids]
        return present or val_ids[:3]
    missing = [track_id for track_id in wanted if track_id not in val_ids]
    if missing:
        raise InputError(f"{val_dir}: --track ids not in the validation folder: {', '.join(missing)}")
    return wanted


def class_weights_for(config: TrainConfig, masks: list[Pair] | list[np.ndarray]) -> list[float] | None:
    """The per-class loss weights of ``--class-weights`` (None: unweighted).

    Median-frequency weights leave Unknown out of the median. With ``--ignore-unknown`` Unknown pixels
    are out of the loss anyway (weight 0 too); with ``--no-ignore-unknown`` they count, with
    :data:`UNKNOWN_WEIGHT` (when the masks hold any).
    """
    if config.class_weights == "none":
        return None
    power = 0.5 if config.class_weights == "sqrt-median" else 1.0
    weights = median_frequency_weights(masks, power=power)
    if not config.ignore_unknown and _has_unknown(masks):
        weights[UNKNOWN] = UNKNOWN_WEIGHT
    return [float(w) for w in weights]


def _has_unknown(masks) -> bool:
    return bool(class_pixel_counts(masks)[0][UNKNOWN] > 0)
