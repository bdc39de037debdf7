"""The budget curve of a study: one recipe trained for different numbers of epochs, each run to the end of
its own schedule, and what it says about a longer run.

A point is a finished run's final-epoch validation mIoU (the mean over its seeds) against the training
images it saw, in whole-tile areas. Points along one run's curve are not budget points: a run's learning
rate decays over its own length, so its late epochs gain more than a longer budget would give them.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetPoint:
    candidate: str
    images: float  # training images seen, in whole-tile areas
    miou: float  # final-epoch validation mIoU, mean over seeds
    seeds: int


def budget_points(table: dict[str, list[dict]], series: list[str], model: str) -> list[BudgetPoint]:
    """The finished runs of ``model`` in the candidates of ``series``, one point per candidate, by images seen."""
    from bench.runs_table import group_key

    points = []
    for name in series:
        runs = [r for r in table.get(group_key(name, model), []) if r["finished"]]
        if runs:
            images = runs[0]["epochs"] * runs[0]["tiles_per_epoch"]
            final = statistics.mean(r["curve"][-1] for r in runs)
            points.append(BudgetPoint(name, images, final, len(runs)))
    return sorted(points, key=lambda p: p.images)


def gains_per_doubling(points: list[BudgetPoint]) -> list[float]:
    """mIoU gained per doubling of the images seen, between each point and the one before."""
    return [(b.miou - a.miou) / math.log2(b.images / a.images) for a, b in zip(points, points[1:])]


def project(points: list[BudgetPoint], images: float) -> dict:
    """mIoU at ``images`` carried on from the last points, two ways.

    ``steady``: the last gain per doubling kept for every further doubling (an upper bound: returns
    shrink). ``shrinking``: each further doubling gains ``ratio`` times the one before, ``ratio`` being
    how the gain per doubling shrank between the last two intervals (needs three points; capped to
    [0, 1]; None with two points).
    """
    if len(points) < 2:
        raise ValueError("a projection needs at least two budget points")
    last = points[-1]
    doublings = math.log2(images / last.images)
    gains = gains_per_doubling(points)
    ratio = shrinking = None
    if len(gains) >= 2 and gains[-2] > 0:
        # the gains belong to the midpoints of their intervals (in doublings): per-doubling ratio between them
        mid = [math.log2(a.images * b.images) / 2 for a, b in zip(points, points[1:])]
        ratio = min(max(gains[-1] / gains[-2], 0.0), 1.0) ** (1 / (mid[-1] - mid[-2]))
        total = doublings if ratio == 1 else ratio * (1 - ratio**doublings) / (1 - ratio)
        shrinking = last.miou + gains[-1] * total
    return {
        "images": images,
        "from_images": last.images,
        "from_miou": last.miou,
        "gain_per_doubling": gains[-1],
        "ratio": ratio,
        "steady": last.miou + gains[-1] * doublings,
        "shrinking": shrinking,
    }


def budget_markdown(model: str, points: list[BudgetPoint], projection: dict | None) -> str:
    """The points with the gain per doubling from the one before, then the projection."""
    lines = [
        f"| {model}: candidate | images seen (whole tiles) | final mIoU | seeds | gain per doubling |",
        "|---|---:|---:|---:|---:|",
    ]
    gains = ["–", *(f"{g:+.3f}" for g in gains_per_doubling(points))]
    for point, gain in zip(points, gains):
        lines.append(f"| {point.candidate} | {point.images:,.0f} | {point.miou:.3f} | {point.seeds} | {gain} |")
    if projection:
        p = projection
        text = (
            f"\n{model} at {p['images']:,.0f} images: {p['steady']:.3f} if every further doubling gained "
            f"{p['gain_per_doubling']:+.3f} as the last did (an upper bound)"
        )
        if p["shrinking"] is not None and p["ratio"] < 1:
            text += f"; {p['shrinking']:.3f} if each gains {p['ratio']:.2f}× the one before, as measured"
        lines.append(text + ".")
    return "\n".join(lines)
