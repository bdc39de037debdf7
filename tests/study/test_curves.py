"""The one validation-mIoU plotter: per-run lines, group means with their range, the best epoch starred."""

from __future__ import annotations

import pytest

from fcn.core.files import is_signature
from fcn.study import curves

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture
def drawn(monkeypatch):
    """The figures plot_val_miou drew, kept open for inspection."""
    import matplotlib.pyplot as plt

    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    yield figures
    for figure in figures:
        close(figure)


def test_a_group_is_its_mean_over_common_epochs_with_the_range_shaded(tmp_path, drawn):
    png = tmp_path / "curves.png"
    groups = {"group": [[0.1, 0.3, 0.5], [0.3, 0.5]], "single": [[0.2, 0.6, 0.4]]}
    curves.plot_val_miou(groups, png, "title", first_epochs={"single": 5})

    (axes,) = drawn[0].axes
    lines = {line.get_label(): line for line in axes.lines if not line.get_label().startswith("_")}
    assert set(lines) == {"group (2)", "single"}
    group, single = lines["group (2)"], lines["single"]
    assert list(group.get_xdata()) == [1, 2]  # only the epochs both runs reached
    assert list(group.get_ydata()) == pytest.approx([0.2, 0.4])
    assert list(single.get_xdata()) == [5, 6, 7]
    assert len(axes.collections) == 1  # a band for the group, none for the single run
    band = axes.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.1) and band.max() == pytest.approx(0.5)
    stars = [(list(s.get_xdata()), list(s.get_ydata())) for s in axes.lines if s.get_marker() == "*"]
    assert stars == [([2], [pytest.approx(0.4)]), ([6], [pytest.approx(0.6)])]


def test_the_png_carries_the_project_signature_so_a_rerun_may_replace_it(tmp_path):
    from PIL import Image

    png = tmp_path / "curves.png"
    curves.plot_val_miou({"run": [[0.1, 0.2]]}, png, "title")
    with Image.open(png) as image:
        assert is_signature(image.text.get("Software"))


def test_history_rows_become_a_curve():
    rows = [{"epoch": 1, "val_miou": 0.25, "loss": 1.0}, {"epoch": 2, "val_miou": 0.5, "loss": 0.5}]
    assert curves.history_curve(rows) == [0.25, 0.5]


def test_a_projection_is_drawn_dashed_from_the_last_mean(tmp_path, drawn):
    curves.plot_val_miou(
        {"a": [[0.2, 0.4], [0.4, 0.6]]},
        tmp_path / "b.png",
        "title",
        x_per_epoch={"a": 100},
        log_x=True,
        x_label="tiles",
        projections={"a": (1600, 0.7)},
    )
    (axes,) = drawn[0].axes
    dashed = [line for line in axes.lines if line.get_label() == "a: projected"]
    assert len(dashed) == 1 and dashed[0].get_linestyle() == "--"
    assert list(dashed[0].get_xdata()) == [200, 1600]
    assert list(dashed[0].get_ydata()) == pytest.approx([0.5, 0.7])
    assert axes.get_xscale() == "log" and axes.get_xlabel().startswith("tiles")


def test_the_largest_drop_counts_only_falls_after_the_given_epoch():
    curve = [0.5, 0.2, 0.6, 0.55, 0.7, 0.62]  # falls of 0.3 (epoch 1→2), 0.05 (3→4), 0.08 (5→6)
    assert curves.largest_drop(curve, after=0) == pytest.approx(0.3)
    assert curves.largest_drop(curve, after=2) == pytest.approx(0.08)
    assert curves.largest_drop(curve, after=5) == pytest.approx(0.08)
    assert curves.largest_drop(curve, after=6) == 0.0
    assert curves.largest_drop([0.1, 0.2, 0.3], after=0) == 0.0  # a curve that only rose
