"""bench/cv.py: folds of contiguous id blocks that keep each DeepGlobe image's quadrants together."""

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
    assert run.command[-3:] == ["--epochs=1", "--init-from", str(runs_dir / "default-fcn32s-f2")]
    assert run.needs == [runs_dir / "default-fcn32s-f2"]
    assert not run.done() and not run.active_elsewhere()
    assert run.epochs == 1
    assert Run("short", "fcn8s", 1, "--epochs 6", tmp_path / "runs", tmp_path, ["--epochs=12"]).epochs == 6
