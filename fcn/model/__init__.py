"""The model: FCN builders, ImageNet weights, the loss, checkpoints, run directories, numeric precision."""

from fcn.core.lazy import lazy_exports

# The public API (docs/API.md): each name with the module it loads from on first use.
__all__, __getattr__, __dir__ = lazy_exports(
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
