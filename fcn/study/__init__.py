"""The study: scoring runs and writing the report.

Its public API is ``__all__``; each name loads from its module on first use.
"""

from fcn.core.lazy import lazy_exports

__all__ = [
    "ReportConfig",
    "build_report",
    "load_run",
    "score_checkpoint",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "fcn.study.report": ("ReportConfig", "build_report"),
        "fcn.study.scoring": ("load_run", "score_checkpoint"),
    },
)
