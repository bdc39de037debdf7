"""Masks predicted without TensorFlow (an exported ONNX model) against the TensorFlow path.

    # in an environment without TensorFlow (docs/PREDICTION.md: the TF-free install):
    fcn-predict --model MODEL.onnx --input TILES --output ONNX_MASKS --scale 0.5
    # here, with TensorFlow:
    python bench/tf_free_agreement.py --model MODEL.keras --input TILES --masks ONNX_MASKS --scale 0.5

For every ``<id>_mask.png`` in ``--masks``, the tile ``<id>_sat.*`` of ``--input`` is predicted the
way the engine did before it stopped using TensorFlow: resized with training's ``resize_tile_tf``
(TensorFlow's antialiased bilinear, rounded to uint8), run by the Keras model, the probabilities
resized back with ``tf.image.resize(antialias=True)`` and argmaxed. Printed: the share of equal
class pixels between that and the ONNX masks, and between that and the Keras model behind today's
engine (numpy/Pillow resizes): what the resize alone changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.core.images import MASK_SUFFIX, read_mask, read_rgb  # noqa: E402


def tensorflow_path(predictor, rgb: np.ndarray, scale: float) -> np.ndarray:
    """Class map by the TensorFlow resizes around the model (the engine before fcn.inference.resize)."""
    import tensorflow as tf

    from fcn.data.pipeline import resize_tile_tf

    size = (max(1, round(rgb.shape[0] * scale)), max(1, round(rgb.shape[1] * scale)))
    work = resize_tile_tf(rgb, size).numpy() if size != rgb.shape[:2] else rgb
    probs = predictor.predict_probs(work)  # scale 1: padding and windows only
    probs = tf.image.resize(probs, rgb.shape[:2], method="bilinear", antialias=True).numpy()
    return probs.argmax(-1).astype(np.uint8)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the .keras file the ONNX model was exported from")
    parser.add_argument("--input", required=True, help="the tiles fcn-predict read")
    parser.add_argument("--masks", required=True, help="the masks fcn-predict wrote with the ONNX model")
    parser.add_argument("--scale", type=float, required=True, help="the --scale fcn-predict ran at")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)

    from fcn.inference.engine import Predictor
    from fcn.model.checkpoints import load_model

    model = load_model(args.model)
    unit, engine = Predictor(model, scale=1.0), Predictor(model, scale=args.scale)
    totals = {"onnx_vs_tf_path": 0, "keras_engine_vs_tf_path": 0}
    pixels = 0
    for mask_path in sorted(Path(args.masks).glob(f"*{MASK_SUFFIX}.png")):
        tile_id = mask_path.name[: -len(f"{MASK_SUFFIX}.png")]
        (source,) = [p for p in Path(args.input).glob(f"{tile_id}_sat.*")]
        rgb = read_rgb(source)
        reference = tensorflow_path(unit, rgb, args.scale)
        totals["onnx_vs_tf_path"] += int((read_mask(mask_path) == reference).sum())
        totals["keras_engine_vs_tf_path"] += int((engine.predict_classes(rgb) == reference).sum())
        pixels += reference.size
    for name, equal in totals.items():
        print(f"{name}: {100 * equal / pixels:.4f} % of {pixels} pixels equal (scale {args.scale})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
