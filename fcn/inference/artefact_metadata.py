"""The metadata an exported artefact carries: what :mod:`fcn.inference.export` stores, and reading it back.

ONNX files keep it in ``metadata_props``; ``.tflite`` files and SavedModels in a sidecar
``<artefact>.json`` (a SavedModel also in ``assets.extra/fcn.json``).
"""

from __future__ import annotations

import os
from pathlib import Path

from fcn import __version__
from fcn.core.errors import InputError
from fcn.core.palette import CLASSES
from fcn.inference.backends import artefact_format, metadata_from_props, read_sidecar

INPUT_NAME = "rgb"
ONNX_OUTPUT_NAME = "probabilities"
KERAS_OUTPUT_NAME = "output_0"  # the name Keras gives the output of its SavedModel/LiteRT signature
METADATA_VERSION = 1


def artefact_metadata(
    model, format: str, *, model_info: dict | None = None, source: str | os.PathLike | None = None
) -> dict:
    """The metadata stored with an exported artefact.

    Args:
        model: the Keras model being exported.
        format: one of :data:`fcn.inference.export.FORMATS`.
        model_info: facts about the run, stored as given under ``"model_info"``, e.g.
            ``{"train_scale": 0.5, "tile_gsd": 1.195, "model_gsd": 2.39}``.
        source: the ``.keras`` file it came from.

    Returns:
        A JSON-serialisable dict.
    """
    import keras
    import tensorflow as tf

    num_classes = int(model.output_shape[-1])
    return {
        "fcn_metadata_version": METADATA_VERSION,
        "model_name": model.name,
        "format": format,
        "num_classes": num_classes,
        "class_names": [c.name for c in CLASSES[:num_classes]],
        "class_colors": [list(c.rgb) for c in CLASSES[:num_classes]],
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", "height", "width", 3],
            "channels": "RGB",
            "value_range": [0, 255],
            "side_multiple": 32,
            "preprocessing": "inside the model (RGB to BGR, minus the ImageNet mean)",
        },
        "output": {
            "name": ONNX_OUTPUT_NAME if format == "onnx" else KERAS_OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", "height", "width", num_classes],
            "content": "softmax probabilities per class; the class map is the argmax over the last axis",
        },
        "model_info": dict(model_info or {}),
        "source": str(source) if source is not None else None,
        "exported_by": {"fcn": __version__, "keras": keras.__version__, "tensorflow": tf.__version__},
    }


def read_metadata(path: str | os.PathLike) -> dict:
    """Read back the metadata of an artefact written by :func:`fcn.inference.export.export_model`.

    Args:
        path: the ``.onnx`` file (metadata_props), or a ``.tflite`` file / SavedModel directory
            (sidecar ``<path>.json``, else a SavedModel's ``assets.extra/fcn.json``).

    Raises:
        InputError: missing artefact, or one that carries no fcn metadata.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such exported model")
    if artefact_format(path) == "onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as err:
            raise InputError(f"{path}: cannot read ONNX file ({err.__class__.__name__})") from None
        info = metadata_from_props({p.key: p.value for p in proto.metadata_props})
    else:
        info = read_sidecar(path)
    if "fcn_metadata_version" not in info:
        raise InputError(f"{path}: carries no fcn metadata (not written by fcn-export?)")
    return info
