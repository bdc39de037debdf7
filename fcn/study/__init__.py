"""The study: scoring runs and writing the report."""

from fcn.core.lazy import lazy_exports

# The public API (docs/API.md): each name with the module it loads from on first use.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.study.report": ("ReportConfig", "build_report"),
        "fcn.study.scoring": ("load_run", "score_checkpoint"),
    },
)
