"""What everything else builds on, with no TensorFlow: palette, metric, image files, the writer, errors.

Its public API is ``__all__``; each name loads from its module on first use.
"""

from fcn.core.lazy import lazy_exports

__all__ = [
    "CLASS_NAMES",
    "ConfusionMatrix",
    "InputError",
    "MeanIouConfig",
    "NUM_CLASSES",
    "PALETTE",
    "class_to_rgb",
    "evaluate_folders",
    "image_size",
    "read_mask",
    "read_rgb",
    "rgb_to_class",
    "run_mean_iou",
    "write_mask",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.core.errors": ("InputError",),
        "fcn.core.evaluate": ("MeanIouConfig", "evaluate_folders", "run_mean_iou"),
        "fcn.core.images": ("image_size", "read_mask", "read_rgb", "write_mask"),
        "fcn.core.metrics": ("ConfusionMatrix",),
        "fcn.core.palette": ("CLASS_NAMES", "NUM_CLASSES", "PALETTE", "class_to_rgb", "rgb_to_class"),
    },
)
