"""fcn.core.files: atomic writes and the temporary files a kill leaves."""

import os
import stat

import pytest

from fcn.core.files import TEMP_MARK, atomic_path, remove_temp_files, write_text_atomic


def test_target_appears_whole_with_a_new_files_mode(tmp_path):
    target = tmp_path / "last.keras"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f".last.keras{TEMP_MARK}") and tmp.suffix == ".keras"
        tmp.write_text("new")
        assert not target.exists()  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["last.keras"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "config.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_suffixes_are_kept_for_writers_that_choose_the_format_by_name(tmp_path):
    with atomic_path(tmp_path / "vgg.weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5")
        tmp.write_bytes(b"")


def test_temp_files_left_by_a_kill_are_found_and_removed(tmp_path):
    stale = tmp_path / f".best.keras{TEMP_MARK}x1y2.keras"
    stale.write_bytes(b"half a zip")
    keep = tmp_path / "best.keras"
    keep.write_bytes(b"whole")
    assert remove_temp_files(tmp_path, "best.keras") == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
