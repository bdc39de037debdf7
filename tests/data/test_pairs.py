"""fcn.data.pairs: finding tile/mask pairs, checking every file up front, decoding them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn.core.errors import InputError
from fcn.core.palette import class_to_rgb
from fcn.data.pairs import find_pairs, read_pair, read_pairs
from helpers import random_pair

# ----------------------------------------------------------------------------- find_pairs


def test_find_pairs_matches_by_id_and_sorts_numerically(tmp_path):
    rng = np.random.default_rng(0)
    random_pair(tmp_path, "10901", rng, image_ext=".jpg")
    random_pair(tmp_path, "855", rng, image_ext=".jpeg")
    random_pair(tmp_path, "6399", rng, image_ext=".png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "subdir").mkdir()

    pairs = find_pairs(tmp_path)

    assert [p.id for p in pairs] == ["855", "6399", "10901"]
    for pair in pairs:
        assert pair.image_path.name.startswith(f"{pair.id}_sat.")
        assert pair.mask_path == tmp_path / f"{pair.id}_mask.png"


@pytest.mark.parametrize("check_pixels", [False, True])
def test_find_pairs_accepts_valid_folder_in_both_modes(tmp_path, check_pixels):
    rng = np.random.default_rng(1)
    for i in range(5):
        random_pair(tmp_path, f"{i:04d}", rng, image_ext=".jpg")
    assert len(find_pairs(tmp_path, check_pixels=check_pixels)) == 5


def test_missing_mask_names_the_image(tmp_path):
    rng = np.random.default_rng(0)
    random_pair(tmp_path, "0001", rng)
    pair = random_pair(tmp_path, "0002", rng)
    pair.mask_path.unlink()
    with pytest.raises(InputError, match=r"0002_sat\.png: no mask 0002_mask\.png"):
        find_pairs(tmp_path)


def test_missing_image_names_the_mask(tmp_path):
    rng = np.random.default_rng(0)
    pair = random_pair(tmp_path, "0003", rng)
    pair.image_path.unlink()
    with pytest.raises(InputError, match=r"0003_mask\.png: no image"):
        find_pairs(tmp_path)


def test_several_problems_reported_on_one_line_with_count(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        random_pair(tmp_path, f"{i:04d}", rng).mask_path.unlink()
    with pytest.raises(InputError) as info:
        find_pairs(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "0000_sat.png" in message and "and 2 more problems" in message


def test_duplicate_image_for_one_id(tmp_path):
    rng = np.random.default_rng(0)
    pair = random_pair(tmp_path, "0005", rng, image_ext=".jpg")
    Image.open(pair.image_path).save(tmp_path / "0005_sat.png")
    with pytest.raises(InputError, match=r"0005_sat\.\w+: a second image for id 0005"):
        find_pairs(tmp_path)


def test_unreadable_image_named(tmp_path):
    rng = np.random.default_rng(0)
    random_pair(tmp_path, "0001", rng)
    bad = random_pair(tmp_path, "0002", rng, image_ext=".jpg")
    bad.image_path.write_bytes(b"this is not a jpeg at all")
    with pytest.raises(InputError, match=r"0002_sat\.jpg: cannot read image"):
        find_pairs(tmp_path)


@pytest.mark.parametrize("which", ["image_path", "mask_path"])
def test_truncated_file_caught_without_full_decode_option(tmp_path, which):
    # A cut-short file still has a valid header: a header read alone would let it through.
    rng = np.random.default_rng(0)
    pair = random_pair(tmp_path, "0007", rng, size=(64, 64), image_ext=".jpg")
    path = getattr(pair, which)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as img:
        assert img.size == (64, 64)  # the header is intact
    with pytest.raises(InputError, match=rf"{path.name}: cannot read image"):
        find_pairs(tmp_path)


def test_file_with_data_after_end_marker_is_accepted(tmp_path):
    # Some writers append data after the JPEG end marker; only a failed full decode is an error.
    rng = np.random.default_rng(0)
    pair = random_pair(tmp_path, "0001", rng, image_ext=".jpg")
    pair.image_path.write_bytes(pair.image_path.read_bytes() + b"extra trailing metadata")
    assert [p.id for p in find_pairs(tmp_path)] == ["0001"]


def test_check_pixels_catches_damage_inside_a_file(tmp_path):
    rng = np.random.default_rng(0)
    pair = random_pair(tmp_path, "0001", rng, size=(32, 32))
    data = bytearray(pair.mask_path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x55 for b in data[middle : middle + 16])
    pair.mask_path.write_bytes(bytes(data))

    assert len(find_pairs(tmp_path)) == 1  # trailer intact: the quick check cannot see it
    with pytest.raises(InputError, match=r"0001_mask\.png: cannot read image"):
        find_pairs(tmp_path, check_pixels=True)


def test_mask_size_differs_from_image(tmp_path):
    rng = np.random.default_rng(0)
    pair = random_pair(tmp_path, "0004", rng, size=(32, 32))
    Image.fromarray(class_to_rgb(np.zeros((32, 48), np.uint8))).save(pair.mask_path)
    with pytest.raises(InputError, match=r"0004_mask\.png: mask is 32x48 .* 0004_sat\.png is 32x32"):
        find_pairs(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no tiles here")
    with pytest.raises(InputError, match=rf"{tmp_path}: no <id>_sat.jpg"):
        find_pairs(tmp_path)


def test_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match=rf"{missing}: no such folder"):
        find_pairs(missing)


def test_read_pair_checks_the_sizes(tmp_path):
    rng = np.random.default_rng(13)
    good = random_pair(tmp_path, "0001", rng)
    rgb, labels = read_pair(good)
    assert rgb.shape == (32, 32, 3) and labels.shape == (32, 32)
    bad = random_pair(tmp_path, "0002", rng)
    Image.fromarray(class_to_rgb(np.zeros((16, 32), np.uint8))).save(bad.mask_path)
    with pytest.raises(InputError, match="0002_mask.png"):
        read_pair(bad)
    assert [r[1].shape for r in read_pairs([good, good])] == [(32, 32), (32, 32)]
