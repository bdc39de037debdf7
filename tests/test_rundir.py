"""fcn.training.rundir: creating, locking and tidying a run directory."""

import os

import pytest

from fcn.core.errors import InputError
from fcn.core.files import TEMP_MARK
from fcn.training.rundir import RunDirectory, check_creatable


def test_a_path_under_a_file_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        check_creatable(tmp_path / "file" / "run")
    with pytest.raises(InputError, match="not a directory"):
        check_creatable(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_refused(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            check_creatable(parent / "run")
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
    (run / "last.keras").write_bytes(b"x")
    with pytest.raises(InputError, match="--resume"), RunDirectory(run):
        pass


def test_a_start_that_never_completed_an_epoch_is_started_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
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
