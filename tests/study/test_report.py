"""fcn.study.scoring, fcn.study.report and fcn-report on two tiny training runs, and their error cases."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fcn.cli import report
from fcn.cli.common import run_cli
from fcn.core.errors import InputError
from fcn.core.images import read_rgb
from fcn.core.palette import CLASS_NAMES, SCORED_CLASSES
from fcn.study import curves, scoring
from helpers import tiny_train_args

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- fixtures: two tiny runs, one report


@pytest.fixture(scope="module")
def runs(tiles, trained_run, tmp_path_factory):
    """The session's tiny fcn8s run, and a tiny fcn32s trained the same way."""
    pytest.importorskip("keras")
    from fcn.cli import train

    fcn32s = tmp_path_factory.mktemp("report_runs") / "fcn32s"
    config = json.loads((trained_run / "config.json").read_text())["args"]
    argv = tiny_train_args(
        *tiles, fcn32s, "--epochs", config["epochs"], "--image-size", config["image_size"], "--lr", config["lr"]
    )
    argv[argv.index("fcn8s")] = "fcn32s"
    assert train.main(argv) == 0
    fcn8s = tmp_path_factory.mktemp("report_runs") / "fcn8s"
    shutil.copytree(trained_run, fcn8s, dirs_exist_ok=True)
    return {"fcn32s": fcn32s, "fcn8s": fcn8s}


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory):
    """The report of both runs: (output folder, report.md text, JSON document)."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("report_out") / "report"
    json_path = out.parent / "numbers.json"
    assert report.main([str(runs["fcn32s"]), str(runs["fcn8s"]), "--out", str(out), "--json", str(json_path)]) == 0
    return out, (out / "report.md").read_text(), json.loads(json_path.read_text())


def section(text: str, title: str) -> str:
    """The Markdown from heading ``## title`` up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(title)}\b.*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(0)


# ---------------------------------------------------------------- the report


@pytest.mark.slow
def test_architecture_tables_show_each_runs_model_at_the_seed_input(built):
    from helpers import tiny_fcn

    _, text, document = built
    for model in ("fcn32s", "fcn8s"):
        total = tiny_fcn(model).count_params()  # the runs' own (tiny) width; test_models checks the seed's
        part = section(text, model)
        assert f"Total params: {total:,}" in part
        assert "| Layer (type) | Output shape | Param # |" in part
        assert "(None, 512, 512, 3)" in part  # shown at the seed's input, not the 64-px training size
        assert {run["model"]: run["architecture"]["total_params"] for run in document["runs"]}[model] == total
    assert "score_pool3 (Conv2D)" in section(text, "fcn8s")
    assert "score_pool3" not in section(text, "fcn32s")


@pytest.mark.slow
def test_every_embedded_image_exists_and_montages_are_the_runs_own(built, runs):
    out, text, _ = built
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links
    for link in links:
        image = read_rgb(out / link)
        assert image.ndim == 3 and image.shape[0] > 0
    for model, run_dir in runs.items():
        for tile_id in ("0008", "0097", "0107"):
            link = f"{model}/tracked_{tile_id}.png"
            assert link in links
            assert (out / link).read_bytes() == (run_dir / "tracked" / f"{tile_id}.png").read_bytes()
        assert f"{model}/val_miou.png" in links
    assert "val_miou_all.png" in links


@pytest.mark.slow
def test_scores_match_training_validation_and_course_format(built, runs):
    _, text, document = built
    for run in document["runs"]:
        part = section(text, run["name"])
        with open(runs[run["model"]] / "history.csv", newline="") as handle:
            recorded = max(float(row["val_miou"]) for row in csv.DictReader(handle))
        overall = run["validation"]["overall"]
        # best.keras rescored on the validation folder reproduces what training recorded for it.
        assert overall["mean_iou"] == pytest.approx(recorded, abs=1e-5)
        assert run["best_epoch"] in (1, 2) and run["epochs_trained"] == 2

        course_lines = re.findall(r"^class #(\d) : (\S+)$", part, flags=re.M)
        assert [int(c) for c, _ in course_lines] == list(SCORED_CLASSES)
        for c, value in course_lines:
            expected = overall["iou"][CLASS_NAMES[int(c)]]
            assert value == ("nan" if expected is None else "%1.5f" % expected)
        assert f"mean_iou: {overall['mean_iou']:f}" in part
        for c in SCORED_CLASSES:
            assert re.search(rf"^\| {c} {CLASS_NAMES[c]} \|", part, flags=re.M)


@pytest.mark.slow
def test_boundary_and_interior_pixels_partition_the_folder(built):
    _, text, document = built
    for run in document["runs"]:
        validation = run["validation"]
        overall = np.array(validation["overall"]["confusion_matrix"])
        boundary = np.array(validation["boundary"]["confusion_matrix"])
        interior = np.array(validation["interior"]["confusion_matrix"])
        np.testing.assert_array_equal(boundary + interior, overall)
        assert overall.sum() == 4 * 64 * 64
        assert 0 < validation["boundary_pixel_fraction"] < 1
    assert "within 3 px of a boundary" in text


@pytest.mark.slow
def test_side_by_side_table_lists_both_runs(built):
    _, text, document = built
    table = section(text, "Side by side")
    assert re.search(r"^\|\s*\| \*\*fcn32s\*\* \| \*\*fcn8s\*\* \|$", table, flags=re.M)
    mious = [f"**{run['validation']['overall']['mean_iou']:.4f}**" for run in document["runs"]]
    assert re.search(
        r"^\| \*\*mIoU \(best\.keras\)\*\* \| " + r" \| ".join(map(re.escape, mious)) + r" \|$", table, flags=re.M
    )
    evidence = section(text, "Skip connections and class boundaries")
    assert "fcn8s minus fcn32s" in evidence and "within 3 px of a boundary" in evidence


# ---------------------------------------------------------------- pieces


def test_boundary_band_is_the_pixels_within_k_of_an_edge():
    labels = np.zeros((20, 20), np.uint8)
    labels[:, 10:] = 3  # one vertical edge between columns 9 and 10
    for width in (0, 1, 3):
        band = scoring.boundary_band(labels, width)
        columns = np.flatnonzero(band.any(axis=0))
        assert columns.tolist() == list(range(9 - width, 11 + width))
        assert band[:, columns].all()  # whole columns: the edge runs top to bottom
    assert not scoring.boundary_band(np.full((8, 8), 2, np.uint8), 3).any()


def test_unique_names_keep_repeated_folder_names_apart(tmp_path):
    names = scoring.unique_names([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "my run"])
    assert names == ["run", "run-2", "my_run"]


def test_missing_matplotlib_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InputError, match="matplotlib is needed"):
        curves.require_matplotlib()


# ---------------------------------------------------------------- errors: one line, exit 2


def one_error_line(capsys, argv):
    code = run_cli(report.main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    return err[0]


@pytest.mark.slow
def test_not_a_run_directory_from_the_script(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert str(tmp_path) in lines[0] and "not a run directory" in lines[0]
    assert not (tmp_path / "out").exists()


def copy_run_without_checkpoints(run_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("config.json", "history.csv"):
        shutil.copy(run_dir / name, target / name)
    return target


@pytest.mark.slow
def test_missing_best_checkpoint_is_named(runs, tmp_path, capsys):
    broken = copy_run_without_checkpoints(runs["fcn8s"], tmp_path / "broken")
    line = one_error_line(capsys, [str(broken), "--out", str(tmp_path / "out")])
    assert str(broken / "best.keras") in line


@pytest.mark.slow
def test_a_bad_run_stops_the_report_before_any_scoring(runs, tmp_path, capsys):
    gone = copy_run_without_checkpoints(runs["fcn8s"], tmp_path / "moved")
    (gone / "best.keras").symlink_to(runs["fcn8s"] / "best.keras")
    config = json.loads((gone / "config.json").read_text())
    config["resolved"]["val_dir"] = str(tmp_path / "deleted_val")
    (gone / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    line = one_error_line(capsys, [str(runs["fcn32s"]), str(gone), "--out", str(out)])
    assert str(tmp_path / "deleted_val") in line and "gone" in line
    assert not (out / "report.md").exists()  # checked up front: the good run was not scored for nothing


@pytest.mark.slow
def test_every_report_file_is_signed(built):
    from fcn.core.mark import carries_mark
    from fcn.study.report import _is_report_markdown

    out, _, document = built
    assert _is_report_markdown(out / "report.md")
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 1 + 2 * 4  # the common curves; per run its curve and three montages
    assert all(carries_mark(png) for png in pngs)
    assert document["written_by"].startswith("fcn ")


@pytest.mark.slow
@pytest.mark.parametrize("foreign", ["report.md", "fcn8s/val_miou.png", "fcn32s/tracked_0097.png"])
def test_a_foreign_file_in_the_report_folder_is_refused_before_any_scoring(runs, tmp_path, capsys, foreign):
    out = tmp_path / "out"
    (out / foreign).parent.mkdir(parents=True)
    (out / foreign).write_bytes(b"someone else's notes")
    line = one_error_line(capsys, [str(runs["fcn32s"]), str(runs["fcn8s"]), "--out", str(out)])
    assert str(out / foreign) in line and "--overwrite" in line
    assert (out / foreign).read_bytes() == b"someone else's notes"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [foreign]
