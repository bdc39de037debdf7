"""What a saved model holds and how to load it.

A checkpoint is a Keras ``.keras`` zip with two extra members written by :func:`save_checkpoint`:

* ``fcn_state.json``: training progress (the epoch it holds, its ``val_miou``, the best so far);
* ``fcn_model.json``: :class:`ModelInfo`, how to use the model: the architecture, the scale it was
  trained at and the ground sample distance of its training tiles, the class names and colours.

So a ``.keras`` file alone says at which scale it predicts best. Keras ignores the extra members.
Keras is imported only by the functions that load or save models.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fcn.core.errors import InputError, first_line
from fcn.core.files import atomic_path
from fcn.core.images import image_size as header_size
from fcn.core.palette import CLASS_NAMES, NUM_CLASSES, PALETTE
from fcn.data.pairs import first_tile
from fcn.model.precision import resolve_precision
from fcn.model.runfiles import RunFiles

STATE_ENTRY = "fcn_state.json"
INFO_ENTRY = "fcn_model.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """How a trained model expects its inputs.

    Attributes:
        model: architecture name (``fcn8s`` ...), or None when unknown.
        train_scale: the factor training resized its tiles by (``--image-size`` / tile side; 1 at
            native size). Validation and, by default, prediction run at this scale.
        tile_gsd: ground sample distance of the training tiles at their own size, metres per
            pixel (course tiles: 1.195), or None when unknown.
    """

    model: str | None = None
    train_scale: float = 1.0
    tile_gsd: float | None = None

    @property
    def model_gsd(self) -> float | None:
        """Metres per pixel of what the model saw in training: ``tile_gsd / train_scale``."""
        return None if self.tile_gsd is None else self.tile_gsd / self.train_scale

    def scale_for(self, input_gsd: float | None = None) -> float:
        """The scale to predict inputs at: ``train_scale``, or ``input_gsd / model_gsd`` when given.

        Raises:
            ValueError: ``input_gsd`` is given but the model does not know its ground sample distance.
        """
        if input_gsd is None:
            return self.train_scale
        if not (input_gsd > 0 and math.isfinite(input_gsd)):
            raise ValueError(f"the input's ground sample distance must be a positive number, got {input_gsd}")
        if self.model_gsd is None:
            raise ValueError(
                "the model does not record the ground sample distance it was trained at "
                "(train with --gsd); give the scale instead"
            )
        return input_gsd / self.model_gsd

    def to_dict(self) -> dict:
        """JSON-ready form, with the derived ``model_gsd`` and the class names and colours."""
        return {
            **asdict(self),
            "model_gsd": self.model_gsd,
            "class_names": list(CLASS_NAMES),
            "palette": PALETTE.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelInfo:
        return cls(
            model=data.get("model"),
            train_scale=float(data.get("train_scale", 1.0)),
            tile_gsd=None if data.get("tile_gsd") is None else float(data["tile_gsd"]),
        )


def _is_keras_archive(path: str | os.PathLike) -> bool:
    """A cheap check (no TensorFlow) that a ``.keras`` zip is whole: its directory and config are there."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def check_keras_file(path: str | os.PathLike) -> None:
    """Refuse a ``.keras`` file that cannot be read, or is not a whole Keras archive (a renamed JPEG, a cut-off
    copy), in one line.

    Raises:
        InputError: the file cannot be opened, or is not a zip archive with a ``config.json``.
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as err:  # a file the user cannot read is not a damaged one
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not _is_keras_archive(path):
        raise InputError(f"{path}: not a valid .keras model (damaged, cut off, or another kind of file)")


def training_scale(image_size: int | None, tile_side: int) -> float:
    """The scale a run trains at: ``--image-size`` over the tiles' side, 1 without ``--image-size``."""
    return float(image_size) / tile_side if image_size else 1.0


def model_info(model) -> ModelInfo:
    """The :class:`ModelInfo` that :func:`load_model` attached to a model (defaults otherwise)."""
    return getattr(model, "fcn_info", None) or ModelInfo()


# ---------------------------------------------------------------- writing


def save_checkpoint(model, path: str | os.PathLike, state: dict, info: ModelInfo | None = None) -> None:
    """Save ``model`` (with optimizer state) to ``path`` atomically, with ``state`` and ``info`` inside.

    A kill at any moment leaves the previous file intact (see :func:`fcn.core.files.atomic_path`).
    """
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STATE_ENTRY, json.dumps(state))
            archive.writestr(INFO_ENTRY, json.dumps((info or model_info(model)).to_dict()))


# ---------------------------------------------------------------- reading


def _read_entry(path, entry: str) -> dict | None:
    with zipfile.ZipFile(path) as archive:
        if entry not in archive.namelist():
            return None
        return json.loads(archive.read(entry))


def read_checkpoint_state(path: str | os.PathLike) -> dict:
    """The training state saved by :func:`save_checkpoint` (``{}`` for other .keras files)."""
    return _read_entry(path, STATE_ENTRY) or {}


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """The :class:`ModelInfo` of a ``.keras`` file.

    Checkpoints that carry no info get it from the configuration of the run directory they are in
    (its ``--image-size`` over the side of its first training tile); other files get defaults.
    """
    data = _read_entry(path, INFO_ENTRY)
    if data is not None:
        return ModelInfo.from_dict(data)
    return _run_info(RunFiles(Path(path).parent))


def _run_info(files: RunFiles) -> ModelInfo:
    """Info from a run's configuration (``args.image_size``, ``args.model``, ``resolved.train_dir``)."""
    try:
        config = files.read_config()
        args = config["args"]
        image_size = args.get("image_size")
        if not image_size:
            return ModelInfo(model=args.get("model"))

        first = first_tile(config["resolved"]["train_dir"])  # a whole check of the folder is not needed here
        if first is None:
            return ModelInfo()
        return ModelInfo(model=args.get("model"), train_scale=training_scale(image_size, max(header_size(first))))
    except (OSError, KeyError, TypeError, ValueError, IndexError, InputError):
        return ModelInfo()


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The file that ``--model`` names: the file itself, or a run directory's best model.

    Args:
        path: a model file, or a training run directory holding ``best.keras`` (else ``last.keras``,
            with a note in the log).

    Raises:
        InputError: nothing to load there.
    """
    path = Path(path)
    if path.is_dir():
        return run_model_file(RunFiles(path))
    if not path.is_file():
        raise InputError(f"{path}: no such model file or run directory")
    return path


def run_model_file(files: RunFiles, *, prefer_last: bool = False, option: str = "") -> Path:
    """A run directory's ``best.keras`` (``last.keras`` with ``prefer_last``), else the other, with a note.

    Raises:
        InputError: the run directory holds neither (``option`` names the flag in the message).
    """
    wanted = files.last if prefer_last else files.best
    found = files.model_file(prefer_last=prefer_last)
    if found is None:
        label = f"{option} " if option else ""
        raise InputError(f"{files.path}: {label}run directory holds neither {files.best.name} nor {files.last.name}")
    if found != wanted:
        log.info("note: %s not found, using %s", wanted, found.name)
    return found


def load_model(
    path: str | os.PathLike,
    *,
    precision: str | None = None,
    num_classes: int | None = NUM_CLASSES,
):
    """Load a saved FCN for prediction, with its :class:`ModelInfo` attached as ``model.fcn_info``.

    Args:
        path: a ``.keras`` file or a run directory (see :func:`resolve_model_path`).
        precision: ``None`` keeps the saved dtype policy; otherwise one of
            :data:`fcn.model.precision.PRECISIONS`.
        num_classes: required number of output channels (None: any).

    Returns:
        The Keras model (not compiled).

    Raises:
        InputError: missing or unreadable file, or a model that does not output (B, H, W,
            num_classes).
    """
    model_path = resolve_model_path(path)
    check_keras_file(model_path)  # unreadable, or damaged / not a model: said before Keras's own message
    import keras

    from fcn.model import builders  # noqa: F401  (registers the custom layers)

    try:
        model = keras.saving.load_model(model_path, compile=False)
        info = read_model_info(model_path)
    except Exception as err:  # Keras raises many types for corrupt or foreign files
        detail = first_line(err)[:200]
        raise InputError(f"{model_path}: cannot load model ({err.__class__.__name__}: {detail})") from None
    output_shape = model.output_shape
    if not (isinstance(output_shape, tuple) and len(output_shape) == 4):
        raise InputError(f"{model_path}: expected one (B, H, W, C) output, got {output_shape}")
    if num_classes is not None and output_shape[-1] != num_classes:
        raise InputError(f"{model_path}: model predicts {output_shape[-1]} classes, the palette has {num_classes}")
    if precision is not None:
        model = with_precision(model, resolve_precision(precision))
    model.fcn_info = info
    return model


def with_precision(model, policy: str):
    """A copy of a functional model whose layers compute under another dtype policy.

    The output layer (the float32 softmax) keeps its dtype; :class:`fcn.model.builders.CaffePreprocess`
    always computes in float32. Weights are copied (variables stay float32 under mixed policies).

    Args:
        model: a functional Keras model.
        policy: a Keras dtype policy name, e.g. ``"mixed_bfloat16"``.

    Returns:
        The new model (the same model when its layers already use ``policy``).
    """
    import keras

    from fcn.model import builders  # noqa: F401  (registers the custom layers for from_config)

    adjustable = [
        layer
        for layer in model.layers[:-1]
        if not isinstance(layer, (keras.layers.InputLayer, builders.CaffePreprocess))
    ]
    if all(layer.dtype_policy.name == policy for layer in adjustable):
        return model
    config = model.get_config()
    outputs = config["output_layers"]
    keep = {outputs[0]} if isinstance(outputs[0], str) else {entry[0] for entry in outputs}
    for layer_config in config["layers"]:
        if layer_config["class_name"] != "InputLayer" and layer_config["config"]["name"] not in keep:
            layer_config["config"]["dtype"] = policy
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    clone.fcn_info = model_info(model)
    return clone
