"""Tests for fcn.data.synthetic: the demo dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn.cli import synthetic
from fcn.cli.common import run_cli
from fcn.core.errors import InputError
from fcn.core.images import read_rgb, write_mask
from fcn.core.palette import NUM_CLASSES, PALETTE
from fcn.data.pairs import find_pairs
from fcn.data.synthetic import TRACKED_VAL_IDS, _make_synthetic_tile, make_synthetic_dataset, split_ids


def test_dataset_written_and_find_pairs_able(tmp_path):
    train_dir, val_dir = make_synthetic_dataset(tmp_path / "demo", n_train=6, n_val=4, size=48)

    assert (train_dir, val_dir) == (tmp_path / "demo" / "train", tmp_path / "demo" / "val")
    train, val = find_pairs(train_dir, check_pixels=True), find_pairs(val_dir, check_pixels=True)
    assert len(train) == 6 and len(val) == 4
    assert set(TRACKED_VAL_IDS) <= {p.id for p in val}
    assert not {p.id for p in train} & {p.id for p in val}
    for pair in train + val:
        assert pair.image_path.suffix == ".jpg"
        assert read_rgb(pair.image_path).shape == (48, 48, 3)


def test_masks_use_palette_colours_only(tmp_path):
    train_dir, _ = make_synthetic_dataset(tmp_path, n_train=5, n_val=0, size=40)
    palette = {tuple(c) for c in PALETTE}
    for mask_path in sorted(train_dir.glob("*_mask.png")):
        colours = {tuple(c) for c in np.asarray(Image.open(mask_path).convert("RGB")).reshape(-1, 3)}
        assert colours <= palette, mask_path


def test_same_seed_same_bytes_other_seed_other_tiles(tmp_path):
    a_train, _ = make_synthetic_dataset(tmp_path / "a", n_train=3, n_val=1, size=32, seed=7)
    b_train, _ = make_synthetic_dataset(tmp_path / "b", n_train=3, n_val=1, size=32, seed=7)
    c_train, _ = make_synthetic_dataset(tmp_path / "c", n_train=3, n_val=1, size=32, seed=8)
    names = sorted(p.name for p in a_train.iterdir())
    assert names == sorted(p.name for p in b_train.iterdir())
    for name in names:
        assert (a_train / name).read_bytes() == (b_train / name).read_bytes()
    assert any((a_train / n).read_bytes() != (c_train / n).read_bytes() for n in names)


def test_tile_depends_on_seed_and_id_only():
    rgb, classes = _make_synthetic_tile(seed=3, tile_id=97, size=64)
    again_rgb, again_classes = _make_synthetic_tile(seed=3, tile_id=97, size=64)
    other_rgb, _ = _make_synthetic_tile(seed=3, tile_id=98, size=64)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert classes.shape == (64, 64) and classes.max() < NUM_CLASSES
    np.testing.assert_array_equal(rgb, again_rgb)
    np.testing.assert_array_equal(classes, again_classes)
    assert not np.array_equal(rgb, other_rgb)


def test_classes_are_separable_by_colour():
    # Learnability check: the mean colour of each class region is far from every other class's.
    means = {c: [] for c in range(NUM_CLASSES)}
    for tile_id in range(30):
        rgb, classes = _make_synthetic_tile(seed=0, tile_id=tile_id, size=64)
        for c in np.unique(classes):
            means[c].append(rgb[classes == c].astype(float).mean(axis=0))
    centres = {c: np.mean(v, axis=0) for c, v in means.items() if v}
    assert len(centres) >= 6  # nearly every class shows up in 30 tiles
    for c, centre in centres.items():
        others = [np.linalg.norm(centre - o) for k, o in centres.items() if k != c]
        assert min(others) > 25, (c, centre)


def test_split_ids_demo_layout():
    train, val = split_ids(48, 12)
    assert len(train) == 48 and len(val) == 12
    assert set(TRACKED_VAL_IDS) <= set(val)
    assert not set(train) & set(val)
    assert train[:9] == ["0000", "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0009"]


def test_split_ids_small_and_explicit():
    assert split_ids(2, 1) == (["0000", "0001"], ["0008"])
    assert split_ids(2, 0) == (["0000", "0001"], [])
    train, val = split_ids(3, 2, ids_val=["0002", 5])
    assert val == ["0002", "0005"] and train == ["0000", "0001", "0003"]
    with pytest.raises(ValueError):
        split_ids(3, 1, ids_val=["0001", "0002"])


def test_refuses_to_mix_with_other_tiles(tmp_path):
    make_synthetic_dataset(tmp_path, n_train=4, n_val=1, size=16)
    make_synthetic_dataset(tmp_path, n_train=4, n_val=1, size=16)  # same set again: fine
    with pytest.raises(InputError, match=r"0003_(sat|mask)\.\w+: not part of this synthetic dataset"):
        make_synthetic_dataset(tmp_path, n_train=3, n_val=1, size=16)


@pytest.mark.parametrize("split, name, signed", [("val", "0008_sat.jpg", False), ("train", "0000_mask.png", True)])
def test_never_replaces_a_file_fcn_did_not_write_as_data(tmp_path, capsys, split, name, signed):
    out = tmp_path / "demo"
    (out / split).mkdir(parents=True)
    path = out / split / name
    if signed:  # a prediction fcn wrote: still no data of ours
        write_mask(path, np.zeros((16, 16), np.uint8))
    else:  # the user's own photo
        Image.new("RGB", (16, 16), (1, 2, 3)).save(path)
    before = path.read_bytes()
    with pytest.raises(InputError, match=name):
        make_synthetic_dataset(out, n_train=2, n_val=1, size=16)
    assert path.read_bytes() == before
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [name]  # nothing written

    assert run_cli(synthetic.main, [str(out), "--n-train", "2", "--n-val", "1", "--size", "16"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and path.read_bytes() == before


def test_its_own_dataset_is_replaced(tmp_path):
    make_synthetic_dataset(tmp_path / "a", n_train=2, n_val=1, size=16, seed=1)
    train_dir, _ = make_synthetic_dataset(tmp_path / "a", n_train=2, n_val=1, size=16, seed=2)
    fresh_dir, _ = make_synthetic_dataset(tmp_path / "b", n_train=2, n_val=1, size=16, seed=2)
    assert {p.name: p.read_bytes() for p in train_dir.iterdir()} == {
        p.name: p.read_bytes() for p in fresh_dir.iterdir()
    }
