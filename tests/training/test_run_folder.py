"""A new run's --out: empty, new, or fcn's own run directory; never a folder of the user's files."""

import json

import pytest

from fcn.core.errors import InputError
from fcn.training.rundir import RunDirectory


@pytest.mark.parametrize("names", [["best.keras"], ["config.json", "history.csv"], ["notes.txt", "photo.jpg"]])
def test_a_folder_of_files_fcn_did_not_write_is_refused_and_kept(tmp_path, names):
    for name in names:
        (tmp_path / name).write_text("the user's")
    with pytest.raises(InputError, match="not a run directory of fcn-train") as caught, RunDirectory(tmp_path):
        pass
    assert "\n" not in str(caught.value) and names[0] in str(caught.value)
    assert all((tmp_path / name).read_text() == "the user's" for name in names)


def test_an_empty_folder_or_a_run_that_never_completed_an_epoch_is_used(tmp_path):
    with RunDirectory(tmp_path / "new"):
        pass
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".lock").write_text("123\n")  # left by a kill: hidden files do not count
    with RunDirectory(tmp_path / "empty"):
        pass
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "config.json").write_text(json.dumps({"format": 2, "args": {"model": "fcn8s"}}))
    (crashed / "history.csv").write_text("epoch\n")
    with RunDirectory(crashed):
        assert not (crashed / "history.csv").exists()  # the crashed start's partial files are cleared
