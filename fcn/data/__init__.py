"""Training data: tile/mask pairs, the tf.data pipeline, class balance, synthetic and DeepGlobe tiles."""

from fcn.core.lazy import lazy_exports

# The public API (docs/API.md): each name with the module it loads from on first use.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.data.balance": ("class_pixel_counts", "median_frequency_weights"),
        "fcn.data.deepglobe_dataset": ("PrepareDeepGlobeConfig", "prepare_deepglobe"),
        "fcn.data.pairs": ("Pair", "find_pairs", "read_pair", "read_pairs"),
        "fcn.data.pipeline": ("make_dataset",),
        "fcn.data.synthetic": ("make_synthetic_dataset",),
    },
)
