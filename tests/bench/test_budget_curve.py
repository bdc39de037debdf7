"""bench/budget_curve.py: budget points from the ends of runs, their gains per doubling, the projection."""

import pytest

from bench.budget_curve import BudgetPoint, budget_points, gains_per_doubling, project


def run(curve, finished=True, epochs=None, per_epoch=100.0):
    return {"curve": curve, "finished": finished, "epochs": epochs or len(curve), "tiles_per_epoch": per_epoch}


def test_points_are_the_final_epochs_of_finished_runs_mean_over_seeds_by_images_seen():
    table = {
        "long fcn8s": [run([0.1, 0.6, 0.7, 0.8]), run([0.1, 0.6, 0.7, 0.6])],
        "short fcn8s": [run([0.2, 0.5])],
        "short fcn32s": [run([0.2, 0.4])],
        "other fcn8s": [run([0.9, 0.9])],
        "unfinished fcn8s": [run([0.3, 0.3], finished=False, epochs=2)],
    }
    points = budget_points(table, ["long", "short", "unfinished"], "fcn8s")
    assert points == [BudgetPoint("short", 200.0, 0.5, 1), BudgetPoint("long", 400.0, pytest.approx(0.7), 2)]


def test_gains_are_per_doubling_of_the_images_seen():
    points = [BudgetPoint("a", 100, 0.4, 1), BudgetPoint("b", 400, 0.5, 1), BudgetPoint("c", 800, 0.52, 1)]
    assert gains_per_doubling(points) == pytest.approx([0.05, 0.02])


def test_the_projection_keeps_or_shrinks_the_last_gain():
    two = [BudgetPoint("a", 100, 0.4, 1), BudgetPoint("b", 200, 0.5, 1)]
    assert project(two, 800)["steady"] == pytest.approx(0.7)
    assert project(two, 800)["shrinking"] is None  # one gain: no shrinking measured

    three = [*two, BudgetPoint("c", 400, 0.55, 1)]
    p = project(three, 1600)
    assert p["ratio"] == pytest.approx(0.5)
    assert p["steady"] == pytest.approx(0.55 + 2 * 0.05)
    assert p["shrinking"] == pytest.approx(0.55 + 0.025 + 0.0125)

    flat = [*two, BudgetPoint("c", 400, 0.6, 1)]  # the gain did not shrink: both ways agree
    assert project(flat, 1600)["shrinking"] == pytest.approx(project(flat, 1600)["steady"])

    with pytest.raises(ValueError):
        project(two[:1], 800)
