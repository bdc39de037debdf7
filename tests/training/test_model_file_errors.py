"""A model file the user names (--init-from, --weights, --model) that cannot be used is one clear line:
unreadable is said as unreadable; a cut-off .keras or a renamed JPEG as not a valid .keras model."""

import errno
import io

import numpy as np
import pytest
from PIL import Image

from fcn.core.errors import InputError
from fcn.model import checkpoints
from fcn.model.weights import init_from_checkpoint


@pytest.fixture
def bad_files(tmp_path, tiny_fcn8s):
    good = tmp_path / "good.keras"
    checkpoints.save_checkpoint(tiny_fcn8s, good, {})
    data = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, "JPEG")
    (tmp_path / "photo.keras").write_bytes(buffer.getvalue())
    return tmp_path


@pytest.mark.parametrize("name", ["cut.keras", "photo.keras"])
def test_init_from_a_damaged_keras_or_a_renamed_jpeg_says_so(bad_files, name):
    with pytest.raises(InputError, match=rf"{name}: not a valid \.keras model \(damaged, cut off"):
        init_from_checkpoint(None, bad_files / name)  # refused before anything is loaded


def test_an_unreadable_keras_is_said_unreadable(bad_files, monkeypatch):
    def no_permission(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(checkpoints, "open", no_permission, raising=False)  # mode 000 (root reads anything)
    with pytest.raises(InputError, match=r"good.keras: cannot be read \(Permission denied\)"):
        checkpoints.load_model(bad_files / "good.keras")
