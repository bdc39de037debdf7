"""fcn: VGG16 FCN32s / FCN16s / FCN8s semantic segmentation of satellite land-cover tiles.

Importing this package is cheap: TensorFlow is only imported by the modules that need it
(the model, the training pipeline, TensorFlow-backed inference), on first use. Once Keras is imported, fcn's layers are
registered with it, so ``import fcn`` is all ``keras.saving.load_model("best.keras")`` needs.
"""

from importlib.metadata import PackageNotFoundError, version

from fcn.core.lazy import lazy_exports, when_imported
from fcn.core.palette import CLASS_NAMES, CLASSES, NUM_CLASSES, PALETTE, class_to_rgb, rgb_to_class

try:
    __version__ = version("fcn")  # one source of truth: pyproject.toml
except PackageNotFoundError:  # a checkout used without installing it
    __version__ = "0+unknown"

# The architectures fcn.build_model knows (here, not in fcn.model.builders, so that command lines can list
# them without importing TensorFlow).
MODEL_NAMES = ("fcn32s", "fcn16s", "fcn8s")


def _register_with_keras() -> None:
    """Make fcn's saved objects loadable by plain ``keras.saving.load_model`` once Keras is imported."""

    def register():
        from fcn.model import builders, losses  # noqa: F401  (their decorators register the classes)

    when_imported("keras", after=register)


_register_with_keras()

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "MODEL_NAMES",
    "NUM_CLASSES",
    "PALETTE",
    "build_model",
    "format_summary",
    "class_to_rgb",
    "rgb_to_class",
]
# Loaded on first use, so that `import fcn` (and the metric tool) does not pay for importing TensorFlow.
_, __getattr__, __dir__ = lazy_exports(__name__, {"fcn.model.builders": ("build_model", "format_summary")})
