"""bench/cv.py: folds of contiguous id blocks that keep each DeepGlobe image's quadrants together."""

import statistics

import pytest

from bench.cv import fold_blocks, parse_candidate
from fcn.core.errors import InputError


def test_three_folds_over_the_200_course_tiles():
    ids = [f"{i:04d}" for i in range(200)]
    blocks = fold_blocks(list(reversed(ids)), 3)
    assert [(b[0], b[-1], len(b)) for b in blocks] == [("0000", "0067", 68), ("0068", "0135", 68), ("0136", "0199", 64)]
    assert sorted(sum(blocks, []), key=int) == ids


def test_blocks_never_split_an_image_and_skip_missing_ids():
    ids = [f"{i:04d}" for i in range(0, 40) if i not in (5, 22)]
    for folds in (2, 3, 4, 7):
        blocks = fold_blocks(ids, folds)
        assert len(blocks) == folds and all(blocks)
        groups = [{int(i) // 4 for i in block} for block in blocks]
        assert all(not (a & b) for k, a in enumerate(groups) for b in groups[k + 1 :])
    with pytest.raises(InputError, match="--folds"):
        fold_blocks(ids, 11)  # 10 images
    with pytest.raises(InputError, match="numeric"):
        fold_blocks(["a", "b"], 2)


def test_candidate_spec():
    models = ["fcn32s", "fcn8s"]
    assert parse_candidate("default=", models) == ("default", models, "")
    assert parse_candidate("staged@fcn8s=--init-from {runs}/default-fcn32s-f{fold}", models) == (
        "staged",
        ["fcn8s"],
        "--init-from {runs}/default-fcn32s-f{fold}",
    )
    for bad in ("nope", "a-b=", "x@fcn4s="):
        with pytest.raises(InputError):
            parse_candidate(bad, models)


def test_run_fills_placeholders_and_waits_for_the_runs_it_names(tmp_path):
    from bench.cv import Run

    runs_dir = tmp_path / "runs"
    run = Run(
        "staged", "fcn8s", 2, "--init-from {runs}/default-fcn32s-f{fold}", runs_dir, tmp_path / "split2", ["--epochs=1"]
    )
    assert run.label == "staged-fcn8s-f2" and run.dir == runs_dir / "staged-fcn8s-f2"
    assert run.command[-4:] == ["--epochs=1", "--seed=0", "--init-from", str(runs_dir / "default-fcn32s-f2")]
    assert run.needs == [runs_dir / "default-fcn32s-f2"]
    assert not run.done() and not run.active_elsewhere()
    assert run.epochs == 1
    assert Run("short", "fcn8s", 1, "--epochs 6", tmp_path / "runs", tmp_path, ["--epochs=12"]).epochs == 6


def test_seeds_name_their_runs_and_reach_the_trainer(tmp_path):
    from bench.cv import Run

    runs_dir = tmp_path / "runs"
    first = Run("default", "fcn8s", 1, "", runs_dir, tmp_path, ["--epochs=2"], seed=0)
    second = Run("staged", "fcn8s", 3, "--init-from {runs}/default-fcn32s-f{fold}{seed_tag}", runs_dir, tmp_path, [], 2)
    assert first.label == "default-fcn8s-f1" and "--seed=0" in first.command  # seed 0 keeps the old names
    assert second.label == "staged-fcn8s-f3-s2" and "--seed=2" in second.command
    assert second.needs == [runs_dir / "default-fcn32s-f3-s2"]


def write_history(run_dir, curve, finished=True, seconds=None):
    """A run directory whose history.csv holds ``curve`` (``seconds`` per epoch, 60 each unless given; a
    last.keras when ``finished``)."""
    from bench.runs_table import IOU_COLUMNS

    run_dir.mkdir(parents=True)
    header = ["epoch", "val_miou", *IOU_COLUMNS, "seconds"]
    seconds = seconds or [60] * len(curve)
    rows = [[str(e), str(v), *[str(v)] * len(IOU_COLUMNS), str(t)] for e, v, t in zip(range(1, 99), curve, seconds)]
    (run_dir / "history.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    if finished:
        (run_dir / "last.keras").write_bytes(b"")


def test_the_table_averages_finished_runs_over_folds_and_seeds_and_marks_the_rest(tmp_path):
    import bench.cv as cv

    runs_dir = tmp_path / "runs"
    curves = {(1, 0): [0.1, 0.2, 0.3, 0.4], (2, 0): [0.2, 0.3, 0.5, 0.4], (1, 1): [0.1, 0.2, 0.2, 0.2]}
    runs = []
    for (fold, seed), curve in curves.items():
        run = cv.Run("default", "fcn8s", fold, "", runs_dir, tmp_path, ["--epochs=4"], seed)
        write_history(run.dir, curve)
        runs.append(run)
    unfinished = cv.Run("default", "fcn8s", 3, "", runs_dir, tmp_path, ["--epochs=4"], 0)
    write_history(unfinished.dir, [0.9, 0.9], finished=False)
    table = cv.summarise_study([*runs, unfinished], after=2)
    text = cv.markdown(table, after=2)
    last3 = [statistics.mean(c[-3:]) for c in curves.values()]
    summary = text.splitlines()[2]
    assert f"| default | fcn8s | 3 (2 × 2) | {statistics.mean(last3):.3f} ± {statistics.stdev(last3):.3f} |" in summary
    assert summary.split(" | ")[-2] == "0.100"  # the worst late drop: fold 2's 0.5 -> 0.4
    assert "| 3 | 0 | 2 of 4 (unfinished) | 0.900 |" in text
    assert "| 1 | 0 | 4 | 0.300 | 0.400 | 0.000 |" in text  # a curve that only rose has no drop, not a negative one
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    cv.plot_curves(cv.finished_only(table), plot)
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("seeds", ["0,x", "-1", ","])
def test_bad_seeds_are_one_error_before_the_data_is_read(tmp_path, seeds):
    from bench.cv import main

    with pytest.raises(InputError, match="--seeds"):
        main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "study"), "--seeds", seeds])
