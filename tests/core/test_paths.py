"""fcn.core.paths: outputs against inputs."""

import pytest

from fcn.core.errors import InputError
from fcn.core.paths import check_apart, check_different_folders, check_not_an_input, same_path


def test_outputs_that_are_inputs_or_model_files_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(b"zip")
    image = tmp_path / "0030_sat.jpg"
    image.write_bytes(b"")
    check_not_an_input([tmp_path / "out.onnx"], [image], run)
    with pytest.raises(InputError, match="overwrite an input"):
        check_not_an_input([tmp_path / "x" / ".." / "0030_sat.jpg"], [image])
    for output in (run / "best.keras", run):
        with pytest.raises(InputError, match="overwrite the model"):
            check_not_an_input([output], [], run)
    with pytest.raises(InputError, match="overwrite the model"):
        check_not_an_input([run / "best.keras"], [], run / "best.keras")


def test_folders_inside_each_other_or_the_same_are_refused(tmp_path):
    (tmp_path / "x" / "train").mkdir(parents=True)
    check_apart(tmp_path / "x" / "train", tmp_path / "y")
    for inp, out in [("x/train", "x"), ("x", "x/train"), ("x", "x")]:
        with pytest.raises(InputError, match="choose folders apart"):
            check_apart(tmp_path / inp, tmp_path / out)
    with pytest.raises(InputError, match="-g and -p are the same folder"):
        check_different_folders(tmp_path / "x", tmp_path / "x" / "train" / "..", ("-g", "-p"))


def test_same_path_resolves_links_and_dots_whether_or_not_the_paths_exist(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert same_path(tmp_path / "link", tmp_path / "a")
    assert same_path(tmp_path / "a" / ".." / "new", tmp_path / "new")
    assert not same_path(tmp_path / "a", tmp_path / "new")
