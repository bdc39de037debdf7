"""The model: FCN builders, ImageNet weights, the loss, checkpoints, run directories, numeric precision.

Its public API is ``__all__``; each name loads from its module on first use.
"""

from fcn.core.lazy import lazy_exports

__all__ = [
    "ModelInfo",
    "PRECISIONS",
    "RunFiles",
    "build_model",
    "choose_precision",
    "format_summary",
    "load_model",
    "read_checkpoint_state",
    "read_model_info",
    "save_checkpoint",
    "segmentation_loss",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.model.builders": ("build_model", "format_summary"),
        "fcn.model.checkpoints": (
            "ModelInfo",
            "load_model",
            "read_checkpoint_state",
            "read_model_info",
            "save_checkpoint",
        ),
        "fcn.model.losses": ("segmentation_loss",),
        "fcn.model.precision": ("PRECISIONS", "choose_precision"),
        "fcn.model.runfiles": ("RunFiles",),
    },
)
