"""Training data: tile/mask pairs, the tf.data pipeline, class balance, synthetic and DeepGlobe tiles.

Its public API is ``__all__``; each name loads from its module on first use.
"""

from fcn.core.lazy import lazy_exports

__all__ = [
    "Pair",
    "PrepareDeepGlobeConfig",
    "class_pixel_counts",
    "find_pairs",
    "make_dataset",
    "make_synthetic_dataset",
    "median_frequency_weights",
    "prepare_deepglobe",
    "read_pair",
    "read_pairs",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.data.balance": ("class_pixel_counts", "median_frequency_weights"),
        "fcn.data.deepglobe_dataset": ("PrepareDeepGlobeConfig", "prepare_deepglobe"),
        "fcn.data.pairs": ("Pair", "find_pairs", "read_pair", "read_pairs"),
        "fcn.data.pipeline": ("make_dataset",),
        "fcn.data.synthetic": ("make_synthetic_dataset",),
    },
)
