"""fcn.core.jpeg_check: the warnings a libjpeg decoder prints on file descriptor 2 are tied to the file decoded."""

import os

import pytest

from fcn.core.errors import InputError
from fcn.core.jpeg_check import damaged_jpegs, refuse_damaged_jpegs

JPEG = b"\xff\xd8\xff\xe0rest"


def warning_decoder(data: bytes) -> None:
    """A stand-in for libjpeg: warns on fd 2 (as libjpeg does) about data holding 'bad', fails on 'fail'."""
    if b"bad" in data:
        os.write(2, b"Corrupt JPEG data: premature end of data segment\n")
    if b"fail" in data:
        raise ValueError("first line\nInvalid JPEG data")


def test_each_warning_names_its_file_and_non_jpegs_are_skipped(tmp_path):
    files = {name: tmp_path / name for name in ("ok.jpg", "bad.jpg", "fail.jpg", "bad.png")}
    files["ok.jpg"].write_bytes(JPEG)
    files["bad.jpg"].write_bytes(JPEG + b"bad")
    files["fail.jpg"].write_bytes(JPEG + b"fail")
    files["bad.png"].write_bytes(b"\x89PNG bad")
    found = damaged_jpegs([*files.values(), tmp_path / "gone.jpg"], warning_decoder)
    assert list(found) == [files["bad.jpg"], files["fail.jpg"], tmp_path / "gone.jpg"]
    assert found[files["bad.jpg"]] == "Corrupt JPEG data: premature end of data segment"
    assert found[files["fail.jpg"]] == "cannot be decoded (Invalid JPEG data)"
    assert found[tmp_path / "gone.jpg"].startswith("cannot be read")
    assert damaged_jpegs(files.values(), None) == {}  # no decoder at hand: nothing checked


def test_the_refusal_is_one_line_naming_the_first_and_counting_the_others(tmp_path):
    paths = [tmp_path / f"{i}_sat.jpg" for i in range(3)]
    for path in paths:
        path.write_bytes(JPEG + b"bad")
    with pytest.raises(
        InputError, match=r"0_sat.jpg: damaged JPEG \(Corrupt JPEG data.*; 2 more: 1_sat.jpg, 2_sat.jpg"
    ):
        refuse_damaged_jpegs(paths, warning_decoder)
