"""Prediction: the engine, resizing, backends, folder and GeoTIFF jobs, areas, export.

Its public API is ``__all__``; each name loads from its module on first use.
"""

from fcn.core.lazy import lazy_exports

__all__ = [
    "ExportConfig",
    "PredictConfig",
    "PredictionRun",
    "Predictor",
    "class_areas",
    "export_model",
    "open_backend",
    "open_scene",
    "run_export",
]
__getattr__, __dir__ = lazy_exports(
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
