"""Validation-mIoU curves of training runs (matplotlib, Agg backend), for the study report."""

from __future__ import annotations

import math
import statistics
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


def plot_val_miou(
    curves: dict[str, list[list[float]]],
    path: str | Path,
    title: str,
    first_epochs: dict[str, int] | None = None,
    *,
    x_per_epoch: dict[str, float] | None = None,
    log_x: bool = False,
    x_label: str = "training images seen",
    projections: dict[str, tuple[float, float]] | None = None,
) -> None:
    """Validation mIoU per epoch, one line per label, its best epoch starred.

    Args:
        curves: label -> the per-epoch mIoU of one or more runs; several runs are drawn as their
            mean (over the epochs all of them reached) with their range shaded.
        path: PNG to write.
        title: figure title.
        first_epochs: label -> the epoch of its first value (default 1), e.g. a second stage
            drawn after its first.
        x_per_epoch: label -> x units per epoch (e.g. training images): the x axis is then epochs
            times that, labelled ``x_label``.
        log_x: a logarithmic x axis.
        x_label: the x axis's name when ``x_per_epoch`` is given.
        projections: label -> an (x, mIoU) point beyond its curve, drawn dashed from the curve's
            last mean (a stated extrapolation, not a measurement).
    """
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for label, runs in curves.items():
            per_epoch = list(zip(*runs))  # the epochs all of them reached
            first = (first_epochs or {}).get(label, 1)
            scale = (x_per_epoch or {}).get(label, 1)
            epochs = [epoch * scale for epoch in range(first, first + len(per_epoch))]
            means = mean_curve(runs)
            name = f"{label} ({len(runs)})" if len(runs) > 1 else label
            (line,) = ax.plot(epochs, means, marker="o", markersize=3, label=name)
            if len(runs) > 1:
                low, high = [min(v) for v in per_epoch], [max(v) for v in per_epoch]
                ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
            finite = [(v, e) for e, v in zip(epochs, means) if math.isfinite(v)]
            if finite:
                best_value, best_epoch = max(finite)
                ax.plot([best_epoch], [best_value], marker="*", markersize=12, color=line.get_color(), linestyle="none")
            if label in (projections or {}):
                x_to, y_to = projections[label]
                ax.plot(
                    [epochs[-1], x_to],
                    [means[-1], y_to],
                    linestyle="--",
                    marker="o",
                    markevery=[1],
                    markerfacecolor="none",
                    color=line.get_color(),
                    label=f"{label}: projected",
                )
        if log_x:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel((x_label if x_per_epoch else "epoch") + " (star: best)")
        ax.set_ylabel("validation mIoU (classes 0-5)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        with atomic_path(path) as tmp:  # the one checked writer: the temp name keeps .png
            fig.savefig(tmp, metadata={"Software": project_signature()})  # the mark check_replaceable reads
    finally:
        plt.close(fig)


def mean_curve(runs: list[list[float]]) -> list[float]:
    """The per-epoch mean of several runs' curves, over the epochs all of them reached."""
    return [statistics.mean(values) for values in zip(*runs)]


def largest_drop(curve: list[float], after: int) -> float:
    """The largest fall from one epoch to the next among epochs after ``after`` (1-based; 0 when it only rose)."""
    return max([0.0, *(curve[e - 1] - curve[e] for e in range(max(after, 1), len(curve)))])


def history_curve(history: list[dict]) -> list[float]:
    """A run's validation mIoU per epoch, from its history rows."""
    return [row["val_miou"] for row in history]
