"""fcn.training.rundir: creating, locking and tidying a run directory."""

import os

import pytest

from fcn.core.errors import InputError
from fcn.core.files import TEMP_MARK
from fcn.training.rundir import RunDirectory, _check_creatable
from helpers import HISTORY_HEADER


def test_a_path_under_a_file_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        _check_creatable(tmp_path / "file" / "run")
    with pytest.raises(InputError, match="not a directory"):
        _check_creatable(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_refused(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            _check_creatable(parent / "run")
    finally:
        parent.chmod(0o700)


def test_second_user_of_a_directory_is_refused_while_the_first_holds_it(tmp_path):
    run = tmp_path / "run"
    with (
        RunDirectory(run),
        pytest.raises(InputError, match=r"in use by another training \(pid \d+\)"),
        RunDirectory(run),
    ):
        pass
    with RunDirectory(run, resume=True):  # released when the first one left
        pass


def test_a_run_with_a_completed_epoch_needs_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"args": {"model": "fcn8s"}}')
    (run / "last.keras").write_bytes(b"x")
    with pytest.raises(InputError, match="--resume"), RunDirectory(run):
        pass


def test_a_start_that_never_completed_an_epoch_is_started_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"args": {"model": "fcn8s"}}')
    (run / "history.csv").write_text("epoch\n1\n")
    (run / "tracked").mkdir()
    (run / f".last.keras{TEMP_MARK}abc.keras").write_bytes(b"half")
    (run / "notes.txt").write_text("mine")
    with RunDirectory(run) as directory:
        assert sorted(p.name for p in directory.path.iterdir()) == [".lock", "config.json", "notes.txt"]


def test_temp_files_are_cleaned_on_resume_too(tmp_path):
    run = tmp_path / "run"
    (run / "tracked" / "0008").mkdir(parents=True)
    (run / "last.keras").write_bytes(b"x")
    stale = [run / f".best.keras{TEMP_MARK}a.keras", run / "tracked" / "0008" / f".epoch_002.png{TEMP_MARK}b.png"]
    for path in stale:
        path.write_bytes(b"half")
    with RunDirectory(run, resume=True):
        assert not any(path.exists() for path in stale)
    assert (run / "last.keras").exists()


def test_a_failure_before_the_first_epoch_removes_the_directory_it_made(tmp_path):
    run = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError), RunDirectory(run):
        (run / "config.json").write_text("{}")
        raise RuntimeError("no epoch completed")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError), RunDirectory(existing):
        raise RuntimeError("no epoch completed")
    assert existing.is_dir()  # not ours to delete


# ---------------------------------------------------------------- RunFiles: the readers and writers


def test_history_rows_round_trip_and_truncate(tmp_path):
    from fcn.model.runfiles import RunFiles

    files = RunFiles(tmp_path)
    assert files.read_history(missing_ok=True) == [] and files.best_val_miou() is None
    with pytest.raises(InputError, match="history.csv: not found"):
        files.read_history()
    for epoch, miou in ((1, 0.2), (2, float("nan")), (3, 0.5)):
        files.append_history({"epoch": epoch, "loss": 1.0 / epoch, "val_miou": miou, "seconds": 2.5})
    rows = files.read_history()
    assert [r["epoch"] for r in rows] == [1, 2, 3] and list(rows[0]) == HISTORY_HEADER
    assert rows[0]["loss"] == 1.0 and rows[0]["lr"] != rows[0]["lr"]  # a column not given is nan
    assert files.best_val_miou() == 0.5  # nan epochs are skipped
    files.truncate_history(2)
    assert [r["epoch"] for r in files.read_history()] == [1, 2]
    files.truncate_history(0)
    assert not files.history_path.exists()


def test_a_history_that_is_not_numbers_is_one_line_naming_it(tmp_path):
    from fcn.model.runfiles import RunFiles

    (tmp_path / "history.csv").write_text("epoch,val_miou\n1,0.5\nx,y\n")
    with pytest.raises(InputError, match=r"history.csv: line 3 is not a row of numbers"):
        RunFiles(tmp_path).read_history()


def test_config_round_trips_through_config_json(tmp_path):
    pytest.importorskip("keras")
    from fcn.model.runfiles import RunFiles
    from fcn.training.config import TrainConfig, config_to_json, read_train_config

    config = TrainConfig(
        train_dir="t", val_dir="v", out=tmp_path, track="0001, 0002", scale_aug=[0.8, 1.25], verbose=0, resume=True
    )
    files = RunFiles(tmp_path)
    files.write_config(config_to_json(config), {"precision": "float32", "precision_reason": None}, resumed=False)
    document = files.read_config()
    assert document["format"] == 2 and document["resumed"] == [] and document["started"]
    assert "verbose" not in document["args"] and "resume" not in document["args"]  # one invocation's, not the run's
    assert read_train_config(tmp_path) == config.replace(verbose=1, resume=False)
    files.write_config(config_to_json(config), {}, resumed=True)
    again = files.read_config()
    assert again["started"] == document["started"] and len(again["resumed"]) == 1


def test_a_config_that_is_not_a_run_is_refused(tmp_path):
    from fcn.model.runfiles import RunFiles

    (tmp_path / "config.json").write_text('{"args": {"epochs": 3}}')
    with pytest.raises(InputError, match="no args.model"):
        RunFiles(tmp_path).read_config()
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        RunFiles(tmp_path).read_config()
