"""fcn.core.folders: input folder scans."""

import os

import pytest

from fcn.core.errors import InputError
from fcn.core.folders import scan_folder


def test_scan_names_dangling_links_and_loops_instead_of_skipping_them(tmp_path):
    (tmp_path / "b_sat.jpg").write_bytes(b"jpeg")
    (tmp_path / "a_sat.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "c_sat.jpg").symlink_to(tmp_path / "c_sat.jpg")
    (tmp_path / ".b_mask.png.tmp-x1.png").write_bytes(b"half")
    (tmp_path / "notes.txt").write_bytes(b"")
    scan = scan_folder(tmp_path, (".jpg", ".png"))
    assert scan.files == [tmp_path / "b_sat.jpg"]
    assert [p.name for p, _ in scan.problems] == ["a_sat.jpg", "c_sat.jpg"]
    assert "does not exist" in scan.problems[0][1] and "loop" in scan.problems[1][1]
    with pytest.raises(InputError, match="no such folder"):
        scan_folder(tmp_path / "nope", (".jpg",))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_is_one_line(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        with pytest.raises(InputError, match="cannot be read"):
            scan_folder(folder, (".jpg",))
    finally:
        folder.chmod(0o755)
