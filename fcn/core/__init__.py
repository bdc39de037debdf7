"""What everything else builds on, with no TensorFlow: palette, metric, image files, the writer and its mark, errors."""

from fcn.core.lazy import lazy_exports

# The public API (docs/API.md): each name with the module it loads from on first use.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.core.errors": ("InputError",),
        "fcn.core.evaluate": ("MeanIouConfig", "evaluate_folders", "run_mean_iou"),
        "fcn.core.images": ("image_size", "read_mask", "read_rgb", "write_mask"),
        "fcn.core.mark": ("carries_mark",),
        "fcn.core.metrics": ("ConfusionMatrix",),
        "fcn.core.palette": ("CLASS_NAMES", "NUM_CLASSES", "PALETTE", "class_to_rgb", "rgb_to_class"),
    },
)
