"""Prediction: the engine, resizing, backends, folder and GeoTIFF jobs, areas, export."""

from fcn.core.lazy import lazy_exports

# The public API (docs/API.md): each name with the module it loads from on first use.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.inference.areas": ("class_areas",),
        "fcn.inference.backends": ("open_backend",),
        "fcn.inference.engine": ("Predictor",),
        "fcn.inference.export": ("ExportConfig", "export_model", "run_export"),
        "fcn.inference.geo": ("open_scene",),
        "fcn.inference.prediction": ("PredictConfig", "PredictionRun"),
    },
)
