"""Training a run: the trainer and its callbacks, optimizer, recipes and config, the run directory."""

from fcn.core.lazy import lazy_exports

# The public API (docs/API.md): each name with the module it loads from on first use.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.training.config": ("TrainConfig", "make_config", "read_train_config"),
        "fcn.training.trainer": ("train",),
    },
)
