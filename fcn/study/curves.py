"""Validation-mIoU curves of training runs (matplotlib, Agg backend), for the study report."""

from __future__ import annotations

import math
from pathlib import Path

from fcn.core.errors import InputError
from fcn.core.files import atomic_path, project_signature


def require_matplotlib():
    """Import matplotlib with the Agg backend; InputError with the install hint when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "matplotlib is needed for the curves: pip install 'fcn[report]' (or pip install matplotlib)"
        ) from None
    return plt


def plot_val_miou(curves: dict[str, list[dict]], path: str | Path, title: str) -> None:
    """Validation mIoU per epoch, one line per run, the best epoch of each marked.

    Args:
        curves: run label -> history rows (``epoch``, ``val_miou``).
        path: PNG to write.
        title: figure title.
    """
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for label, rows in curves.items():
            epochs = [r["epoch"] for r in rows]
            values = [r["val_miou"] for r in rows]
            (line,) = ax.plot(epochs, values, marker="o", markersize=3, label=label)
            finite = [(v, e) for e, v in zip(epochs, values) if math.isfinite(v)]
            if finite:
                best_value, best_epoch = max(finite)
                ax.plot([best_epoch], [best_value], marker="*", markersize=12, color=line.get_color(), linestyle="none")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (star: best)")
        ax.set_ylabel("validation mIoU (classes 0-5)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        with atomic_path(path) as tmp:  # the one checked writer: the temp name keeps .png
            fig.savefig(tmp, metadata={"Software": project_signature()})  # the mark check_replaceable reads
    finally:
        plt.close(fig)
