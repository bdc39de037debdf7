"""bench/quality_split.py: validation ids from a spec, and the split of a data folder as links."""

import shutil

import pytest

from bench.quality_split import make_split, parse_id_spec
from fcn.core.errors import InputError
from fcn.data.synthetic import make_synthetic_dataset


def test_val_id_spec_parses_ranges_and_single_ids():
    assert parse_id_spec("0003-0005, 0008") == [("0003", "0005"), ("0008", "0008")]
    for bad in ("0009-0003", "", "12-ab", "1-2-3"):
        with pytest.raises(InputError):
            parse_id_spec(bad)


def test_split_links_tiles_without_copying(tmp_path):
    # Tiles 0000-0005 (train) and 0008, 0097, 0107 (val) of the synthetic split, pooled in one folder.
    train_dir, val_dir = make_synthetic_dataset(tmp_path / "src", n_train=6, n_val=3, size=32, seed=1)
    data = tmp_path / "all"
    data.mkdir()
    for folder in (train_dir, val_dir):
        for path in folder.iterdir():
            shutil.copy(path, data / path.name)
    split_train, split_val = make_split(data, "0004-0008,0097", tmp_path / "split")
    train_ids = sorted(p.name[:4] for p in split_train.glob("*_sat.jpg"))
    val_ids = sorted(p.name[:4] for p in split_val.glob("*_sat.jpg"))
    assert val_ids == ["0004", "0005", "0008", "0097"]  # a range takes the ids that exist
    assert train_ids == ["0000", "0001", "0002", "0003", "0107"]
    for path in [*split_train.iterdir(), *split_val.iterdir()]:
        assert path.is_symlink() or path.stat().st_nlink > 1
        assert path.read_bytes() == (data / path.name).read_bytes()
    # Rebuilding with another split replaces the links.
    split_train, split_val = make_split(data, "0000", tmp_path / "split")
    assert sorted(p.name[:4] for p in split_val.glob("*_sat.jpg")) == ["0000"]
    assert len(list(split_train.glob("*_sat.jpg"))) == 8
    for missing in ("4242", "0300-0399"):
        with pytest.raises(InputError, match=missing):
            make_split(data, missing, tmp_path / "split")
