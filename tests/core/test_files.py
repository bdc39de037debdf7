"""fcn.core.files: the checked writer (atomic, synced, size and bytes checked, full disk), marks, temporary files a kill leaves."""

import errno
import os
import stat

import numpy as np
import pytest

from fcn.core.errors import InputError
from fcn.core.files import (
    TEMP_MARK,
    DiskFullError,
    WriteError,
    atomic_path,
    is_disk_full,
    remove_temp_files,
    write_text_atomic,
)
from fcn.core.images import write_image_atomic, write_mask


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
    other = tmp_path / f".last.keras{TEMP_MARK}a1b2.keras"
    other.write_bytes(b"another writer's")
    deep = tmp_path / "tracked" / f".epoch_001.png{TEMP_MARK}c3.png"
    deep.parent.mkdir()
    deep.write_bytes(b"half a png")
    assert remove_temp_files(tmp_path, {"best.keras"}) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "best.keras", "tracked"]
    assert remove_temp_files(tmp_path, recursive=True) == [other, deep]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["best.keras", "tracked"]


def _disk_full_after(monkeypatch, limit: int):
    """Make the checked writer's low-level write fail like a full disk once ``limit`` bytes are written."""
    from fcn.core import files

    written = 0

    def write_chunk(fd, data):
        nonlocal written
        room = limit - written
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = os.write(fd, data[:room])
        written += count
        return count

    monkeypatch.setattr(files, "_write_chunk", write_chunk)


def test_a_full_disk_is_one_line_naming_the_target_and_leaves_nothing(tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, 10)
    target = tmp_path / "stats.csv"
    with pytest.raises(DiskFullError) as info:
        write_text_atomic(target, "x" * 100)
    assert str(info.value).startswith(f"{target}: cannot write (") and "\n" not in str(info.value)
    assert isinstance(info.value, OSError) and isinstance(info.value, InputError) and is_disk_full(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_the_previous_image_whole(tmp_path, monkeypatch):
    target = tmp_path / "0001_overlay.jpg"
    write_image_atomic(target, np.full((32, 32, 3), 50, np.uint8), quality=90)
    before = target.read_bytes()
    _disk_full_after(monkeypatch, 100)
    with pytest.raises(DiskFullError):
        write_image_atomic(target, np.full((32, 32, 3), 200, np.uint8), quality=90)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["0001_overlay.jpg"]


def test_bytes_that_do_not_reach_the_disk_are_not_renamed_into_place(tmp_path):
    target = tmp_path / "m.onnx"
    with pytest.raises(WriteError, match="3 of 5 bytes"), atomic_path(target, size=5) as tmp:
        tmp.write_bytes(b"abc")
    with pytest.raises(WriteError, match="bad header"), atomic_path(target, verify=_refuse) as tmp:
        tmp.write_bytes(b"abc")
    assert list(tmp_path.iterdir()) == []


def _refuse(path):
    raise OSError(errno.EIO, "bad header")


def test_a_full_disk_inside_the_block_becomes_a_disk_full_error(tmp_path):
    with pytest.raises(DiskFullError, match="best.keras"), atomic_path(tmp_path / "best.keras"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_images_text_and_tiffs_carry_the_projects_mark(tmp_path):
    from PIL import Image

    from fcn.core.mark import carries_mark

    write_mask(tmp_path / "a_mask.png", np.zeros((4, 4), np.uint8))
    write_image_atomic(tmp_path / "a_overlay.jpg", np.zeros((4, 4, 3), np.uint8), quality=90)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "b_mask.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "n.onnx").write_bytes(b"\x08\x07fcn_metadata_version")
    (tmp_path / "o.onnx").write_bytes(b"\x08\x07other")
    marks = {p.name: carries_mark(p) for p in tmp_path.iterdir()}
    assert marks == {
        "a_mask.png": True,
        "a_overlay.jpg": True,
        "b_mask.png": False,
        "b.jpg": False,
        "n.onnx": True,
        "o.onnx": False,
    }
