"""fcn.core.mark: what an output may replace."""

import numpy as np
import pytest
from PIL import Image

from fcn.core.errors import InputError
from fcn.core.images import write_mask
from fcn.core.mark import check_replaceable


def test_a_file_the_project_did_not_write_is_refused_unless_overwrite(tmp_path):
    ours, theirs = tmp_path / "0001_mask.png", tmp_path / "0002_mask.png"
    write_mask(ours, np.zeros((4, 4), np.uint8))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(theirs)  # e.g. a ground-truth mask
    check_replaceable(ours)
    check_replaceable(tmp_path / "new_mask.png")
    with pytest.raises(InputError, match="was not written by fcn.*--overwrite") as info:
        check_replaceable(theirs, option="--output")
    assert str(info.value).startswith(str(theirs)) and "\n" not in str(info.value)
    check_replaceable(theirs, overwrite=True)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(InputError, match="not written by fcn"):
        check_replaceable(notes)
    check_replaceable(notes, ours=lambda p: p.read_text() == "mine")
