"""Training a run: the trainer and its callbacks, optimizer, recipes and config, the run directory.

Its public API is ``__all__``; each name loads from its module on first use.
"""

from fcn.core.lazy import lazy_exports

__all__ = [
    "TrainConfig",
    "make_config",
    "read_train_config",
    "train",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.training.config": ("TrainConfig", "make_config", "read_train_config"),
        "fcn.training.trainer": ("train",),
    },
)
