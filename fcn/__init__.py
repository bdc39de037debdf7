"""fcn: VGG16 FCN32s / FCN16s / FCN8s semantic segmentation of satellite land-cover tiles.

Importing this package is cheap: TensorFlow is only imported by the modules that need it
(models, weights, data, train, predict), on first use.
"""

from .palette import CLASSES, CLASS_NAMES, NUM_CLASSES, PALETTE, class_to_rgb, rgb_to_class

__version__ = "0.1.0"

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "NUM_CLASSES",
    "PALETTE",
    "build_model",
    "class_to_rgb",
    "rgb_to_class",
]


def __getattr__(name):
    # Lazy so that `import fcn` (and the metric tool) does not pay for importing TensorFlow.
    if name in ("build_model", "model_summary_table", "MODEL_NAMES"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'fcn' has no attribute {name!r}")
