"""bench/real_split.py: the reference study on a training folder and a validation folder."""

import json
import statistics
import subprocess

import pytest

from fcn.core.errors import InputError
from fcn.data.synthetic import make_synthetic_dataset
from tests.bench.test_cv import write_history


@pytest.fixture
def folders(tmp_path):
    train, val = make_synthetic_dataset(tmp_path / "data", n_train=3, n_val=2, size=32, seed=0)
    return train, val


def study_args(train, val, out, *extra):
    return ["--train", str(train), "--val", str(val), "--out", str(out), *extra]


def test_runs_are_named_by_model_and_seed_and_share_the_settings(tmp_path, folders):
    import bench.real_split as study

    args = study.get_args_parser().parse_args(study_args(*folders, tmp_path / "s", "--seeds", "0,3"))
    split = study.link_split(args.train, args.val, args.out)
    candidates = [("default", ["fcn8s", "fcn32s"], ""), ("ema", ["fcn8s"], "--ema 0.9")]
    runs = study.plan_runs(args, candidates, split, study.common_train_args(args, ["--lr=1e-4"]), [0, 3])
    assert [r.label for r in runs] == [
        "default-fcn8s-s0",
        "default-fcn32s-s0",
        "ema-fcn8s-s0",
        "default-fcn8s-s3",
        "default-fcn32s-s3",
        "ema-fcn8s-s3",
    ]
    ema = runs[-1]
    assert ema.command[ema.command.index("--train-dir") + 1] == str(split / "train")
    assert (split / "train").resolve() == folders[0].resolve() and (split / "val").resolve() == folders[1].resolve()
    assert ema.command[-5:] == ["--cache", "--lr=1e-4", "--seed=3", "--ema", "0.9"]
    assert "--epochs=20" in ema.command and "--precision=auto" in ema.command and ema.epochs == 20


def test_the_split_is_kept_when_it_matches_and_refused_when_it_does_not(tmp_path, folders):
    from bench.real_split import link_split

    train, val = folders
    first = link_split(train, val, tmp_path / "s")
    assert link_split(train, val, tmp_path / "s") == first
    with pytest.raises(InputError, match="links elsewhere"):
        link_split(val, val, tmp_path / "s")


def test_a_stopped_run_is_resumed_and_a_finished_one_kept(tmp_path, folders, monkeypatch):
    import bench.real_split as study

    started = []

    class FakeProcess:
        def __init__(self, command, **_):
            started.append(command)
            self.returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr("time.sleep", lambda _: None)
    args = study.get_args_parser().parse_args(study_args(*folders, tmp_path / "s", "--seeds", "0", "--epochs", "4"))
    split = study.link_split(args.train, args.val, args.out)
    runs = study.plan_runs(args, [("default", ["fcn8s", "fcn32s"], "")], split, study.common_train_args(args, []), [0])
    write_history(runs[0].dir, [0.1, 0.2])  # stopped after epoch 2 of 4
    (runs[0].dir / "config.json").write_text("{}")
    write_history(runs[1].dir, [0.1, 0.2, 0.3, 0.4])  # finished
    study.train_all(runs, jobs=2, threads=1)
    assert len(started) == 1
    assert started[0][2:] == ["--resume", str(runs[0].dir), "--epochs", "4", "--progress", "none"]


def write_run(run_dir, curve, image_size=32, crop=16, seconds=None):
    """A finished run of ``curve`` (60 s per epoch unless ``seconds``) on ``crop``-pixel crops of ``image_size`` tiles."""
    write_history(run_dir, curve, seconds=seconds)
    args = {"model": "fcn8s", "image_size": image_size, "crop": crop}
    (run_dir / "config.json").write_text(json.dumps({"args": args, "resolved": {}}))


def test_the_table_is_the_mean_over_seeds_with_throughput_and_both_plots(tmp_path, folders):
    import bench.real_split as study

    out = tmp_path / "s"
    curves = {0: [0.30, 0.40, 0.50, 0.55], 1: [0.20, 0.45, 0.50, 0.52]}
    for seed, curve in curves.items():  # seed 1 was paused for an hour in its first epoch
        write_run(out / "runs" / f"default-fcn8s-s{seed}", curve, seconds=[3600, 60, 60, 60] if seed else None)
    # after epoch 1: seed 0 drops 0.05 from epoch 2 to 3, seed 1 0.06 from 3 to 4; their mean 0.02 from 3 to 4
    for seed, curve in {0: [0.30, 0.50, 0.45, 0.47], 1: [0.30, 0.40, 0.50, 0.44]}.items():
        write_run(out / "runs" / f"default-fcn32s-s{seed}", curve)
    for seed, curve in {0: [0.3, 0.5, 0.5, 0.5], 1: [0.3, 0.5, 0.5, 0.56]}.items():  # a lever: last-3 0.5, 0.52
        write_run(out / "runs" / f"ema-fcn8s-s{seed}", curve)
    argv = study_args(*folders, out, "--seeds", "0,1", "--epochs", "4", "--models", "fcn8s,fcn32s", "--table-only")
    argv += ["--candidate", "default=", "--candidate", "ema@fcn8s=--ema 0.9"]
    pytest.importorskip("matplotlib")
    study.main([*argv, "--after", "1", "--plot", str(tmp_path / "c.png"), "--budget-plot", str(tmp_path / "b.png")])
    text = (out / "study.md").read_text()
    last3 = [statistics.mean(c[-3:]) for c in curves.values()]
    assert f"| default | fcn8s | 2 | {statistics.mean(last3):.3f} ± {statistics.stdev(last3):.3f} | – | 0.535 |" in text
    versus = 0.51 - statistics.mean(last3)  # the lever's mean over seeds against the default's, same model
    assert f"| ema | fcn8s | 2 | 0.510 ± 0.014 | {versus:+.3f} | 0.530 |" in text
    # no late drop; wall minutes (4 and 63) averaged, but tiles/s from the median epoch: 3 tiles per 60 s
    assert text.splitlines()[2].endswith("| 0.000 / 0.000 | 33.5 | 0.05 |")
    assert "| 63.0 | 1.0 | 0.05 |" in text
    assert "| default | fcn8s | 1 | 4 | 0.490 | 0.520 (4) |" in text
    assert "| 0.020 / 0.060 | 4.0 |" in text.splitlines()[3]  # fcn32s: the mean curve's drop, then the worst run's
    for png in ("c.png", "b.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")
    # --baseline: the lever that won becomes what the others are compared with; fcn32s has no run of it
    table = json.loads((out / "study.json").read_text())["table"]
    rows = study.markdown(table, after=1, baseline="ema").splitlines()
    assert "| vs ema |" in rows[0]
    assert rows[2].startswith(
        f"| default | fcn8s | 2 | {statistics.mean(last3):.3f} ± {statistics.stdev(last3):.3f} | {-versus:+.3f} |"
    )
    assert rows[3].startswith("| default | fcn32s | 2 |") and rows[3].split(" | ")[4] == "–"
    assert rows[4].startswith("| ema | fcn8s | 2 | 0.510 ± 0.014 | – |")


def test_the_budget_series_ends_make_the_curve_and_it_is_carried_on(tmp_path, folders, caplog):
    import bench.real_split as study

    out = tmp_path / "s"
    # 16-px crops of 32-px tiles: 3 tiles a quarter each = 0.75 whole tiles per epoch. The series: the same
    # recipe for 2, 4 and 8 epochs (1.5, 3 and 6 images); only the final epochs count, gaining 0.08 then 0.04.
    write_run(out / "runs" / "e2-fcn8s-s0", [0.10, 0.50], image_size=None)  # native 32-px tiles: a quarter too
    write_run(out / "runs" / "e4-fcn8s-s0", [0.1, 0.2, 0.3, 0.58])
    for seed, final in ((0, 0.61), (1, 0.63)):
        write_run(out / "runs" / f"e8-fcn8s-s{seed}", [0.1] * 7 + [final])
    write_run(out / "runs" / "e8-fcn32s-s0", [0.1] * 7 + [0.5])  # one budget: no curve
    argv = study_args(*folders, out, "--seeds", "0,1", "--models", "fcn8s,fcn32s", "--table-only")
    argv += ["--candidate", "e2=--epochs 2", "--candidate", "e4=--epochs 4", "--candidate", "e8=--epochs 8"]
    pytest.importorskip("matplotlib")
    budget = tmp_path / "b.png"
    study.main([*argv, "--budget-series", "e2,e4,e8,e16", "--project-to", "24", "--budget-plot", str(budget)])
    assert "no finished run of e16 yet" in caplog.text  # a budget still to run is named, not an error

    text = (out / "study.md").read_text()
    assert "| e2 | 2 | 0.500 | 1 | – |" in text
    assert "| e4 | 3 | 0.580 | 1 | +0.080 |" in text
    assert "| e8 | 6 | 0.620 | 2 | +0.040 |" in text
    assert "fcn32s: candidate" not in text
    projected = json.loads((out / "study.json").read_text())["projections"]["e8 fcn8s"]
    assert projected["steady"] == pytest.approx(0.62 + 2 * 0.04)  # two more doublings at +0.04
    assert projected["ratio"] == pytest.approx(0.5)
    assert projected["shrinking"] == pytest.approx(0.62 + 0.02 + 0.01)  # each half the one before
    assert budget.read_bytes().startswith(b"\x89PNG")


def test_a_projection_needs_the_budget_series(tmp_path, folders):
    import bench.real_split as study

    with pytest.raises(InputError, match="--budget-series"):
        study.main(study_args(*folders, tmp_path / "s", "--table-only", "--project-to", "100"))
    with pytest.raises(InputError, match="--baseline ema: not one of the --candidate names"):
        study.main(study_args(*folders, tmp_path / "s", "--table-only", "--baseline", "ema"))


def test_an_unfinished_run_does_not_cut_its_groups_plotted_curve_short():
    from bench.real_split import plotted_runs

    done, running = {"finished": True, "curve": [0.1] * 20}, {"finished": False, "curve": [0.1]}
    table = {"default fcn32s": [done, running], "long40 fcn8s": [running]}
    assert plotted_runs(table) == {"default fcn32s": [done], "long40 fcn8s": [running]}
