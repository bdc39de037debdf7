"""fcn.core.guards: what an output may replace, inputs against outputs, folder scans, memory."""

import os

import numpy as np
import pytest
from PIL import Image

from fcn.core import guards
from fcn.core.errors import InputError
from fcn.core.images import write_mask


def test_a_file_the_project_did_not_write_is_refused_unless_overwrite(tmp_path):
    ours, theirs = tmp_path / "0001_mask.png", tmp_path / "0002_mask.png"
    write_mask(ours, np.zeros((4, 4), np.uint8))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(theirs)  # e.g. a ground-truth mask
    guards.check_replaceable(ours)
    guards.check_replaceable(tmp_path / "new_mask.png")
    with pytest.raises(InputError, match="was not written by fcn.*--overwrite") as info:
        guards.check_replaceable(theirs, option="--output")
    assert str(info.value).startswith(str(theirs)) and "\n" not in str(info.value)
    guards.check_replaceable(theirs, overwrite=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(InputError, match="not written by fcn"):
        guards.check_replaceable(notes)
    guards.check_replaceable(notes, ours=lambda p: p.read_text() == "mine")


def test_outputs_that_are_inputs_or_model_files_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(b"zip")
    image = tmp_path / "0030_sat.jpg"
    image.write_bytes(b"")
    guards.check_not_an_input([tmp_path / "out.onnx"], [image], run)
    with pytest.raises(InputError, match="overwrite an input"):
        guards.check_not_an_input([tmp_path / "x" / ".." / "0030_sat.jpg"], [image])
    for output in (run / "best.keras", run):
        with pytest.raises(InputError, match="overwrite the model"):
            guards.check_not_an_input([output], [], run)
    with pytest.raises(InputError, match="overwrite the model"):
        guards.check_not_an_input([run / "best.keras"], [], run / "best.keras")


def test_folders_inside_each_other_or_the_same_are_refused(tmp_path):
    (tmp_path / "x" / "train").mkdir(parents=True)
    guards.check_apart(tmp_path / "x" / "train", tmp_path / "y")
    for inp, out in [("x/train", "x"), ("x", "x/train"), ("x", "x")]:
        with pytest.raises(InputError, match="choose folders apart"):
            guards.check_apart(tmp_path / inp, tmp_path / out)
    with pytest.raises(InputError, match="-g and -p are the same folder"):
        guards.check_different_folders(tmp_path / "x", tmp_path / "x" / "train" / "..", ("-g", "-p"))


def test_scan_names_dangling_links_and_loops_instead_of_skipping_them(tmp_path):
    (tmp_path / "b_sat.jpg").write_bytes(b"jpeg")
    (tmp_path / "a_sat.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "c_sat.jpg").symlink_to(tmp_path / "c_sat.jpg")
    (tmp_path / ".b_mask.png.tmp-x1.png").write_bytes(b"half")
    (tmp_path / "notes.txt").write_bytes(b"")
    scan = guards.scan_folder(tmp_path, (".jpg", ".png"))
    assert scan.files == [tmp_path / "b_sat.jpg"]
    assert [p.name for p, _ in scan.problems] == ["a_sat.jpg", "c_sat.jpg"]
    assert "does not exist" in scan.problems[0][1] and "loop" in scan.problems[1][1]
    with pytest.raises(InputError, match="no such folder"):
        guards.scan_folder(tmp_path / "nope", (".jpg",))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_is_one_line(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        with pytest.raises(InputError, match="cannot be read"):
            guards.scan_folder(folder, (".jpg",))
    finally:
        folder.chmod(0o755)


def test_a_job_that_cannot_fit_in_memory_is_refused_before_it_starts(monkeypatch):
    monkeypatch.setattr(guards, "available_memory", lambda: 8 * 2**30)
    needed = guards.prediction_memory(512, 512, 100.0)
    assert needed > 100 * 2**30 > guards.prediction_memory(512, 512, 1.0) * 1000
    with pytest.raises(InputError, match=r"x.jpg at --scale 100: needs about .* GiB of memory, 8.0 GiB available"):
        guards.check_memory(needed, "x.jpg at --scale 100")
    guards.check_memory(guards.prediction_memory(512, 512, 1.0), "x.jpg")
    assert guards.tiling_memory(2448, 2448, 200000, 1) > 100 * 2**30
    assert guards.available_memory() is None or guards.available_memory() > 0
