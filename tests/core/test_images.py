import os

import numpy as np
import pytest
from PIL import Image

from fcn.core.errors import InputError
from fcn.core.images import _list_images, image_size, read_mask, read_rgb, write_mask


def test_grayscale_is_expanded_and_alpha_dropped(tmp_path):
    Image.fromarray(np.full((5, 7), 200, np.uint8)).save(tmp_path / "g.png")
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., :3] = (0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "a.png")  # fully transparent water
    assert read_rgb(tmp_path / "g.png").shape == (5, 7, 3)
    assert (read_mask(tmp_path / "a.png") == 4).all()
    assert image_size(tmp_path / "g.png") == (5, 7)


@pytest.mark.parametrize("content", [None, b"definitely not a png"])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, content):
    path = tmp_path / "0001_mask.png"
    if content is not None:
        path.write_bytes(content)
    for reader in (read_rgb, image_size):
        with pytest.raises(InputError) as info:
            reader(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert str(info.value).count(str(path)) == 1


def test_atomic_writes_get_the_mode_of_a_new_file(tmp_path):
    write_mask(tmp_path / "m.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "plain").write_bytes(b"")
    assert os.stat(tmp_path / "m.png").st_mode & 0o777 == os.stat(tmp_path / "plain").st_mode & 0o777
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_list_images_sorts_and_filters(tmp_path):
    for name in ("b.JPG", "a.png", "c.txt", "d.jpeg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in _list_images(tmp_path)] == ["a.png", "b.JPG", "d.jpeg"]
    with pytest.raises(InputError, match="nope"):
        _list_images(tmp_path / "nope")


def test_images_over_pillows_pixel_limit_are_one_line_errors_and_those_it_only_warns_about_are_read(
    tmp_path, monkeypatch, recwarn
):
    from PIL import Image

    warned, refused = tmp_path / "large_sat.png", tmp_path / "big_sat.png"
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(warned)  # 144 px: over the limit, Pillow warns
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(refused)  # 400 px: over twice the limit, it refuses
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_rgb(warned).shape == (12, 12, 3) and image_size(warned) == (12, 12)
    assert not [w for w in recwarn if "decompression" in str(w.message).lower()]
    for reader in (read_rgb, image_size):
        with pytest.raises(InputError) as info:
            reader(refused)
        assert str(info.value).startswith(f"{refused}: more than 200 pixels") and "\n" not in str(info.value)
