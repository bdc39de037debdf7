"""Every command finds the same tile/mask pairs in a folder (one naming rule), and names what it skips."""

import logging
import shutil

import numpy as np
import pytest

from fcn.core.evaluate import _pair_masks
from fcn.core.images import pair_role, tile_id
from fcn.data.deepglobe import find_sources
from fcn.data.pairs import find_pairs
from fcn.inference.folder import list_input_images
from helpers import random_pair

IDS = ["0001", "0002", "with\nnewline", "with space", "UPPER"]


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for pair_id in IDS:
        random_pair(data, pair_id, rng, size=(8, 8), image_ext=".jpg")
    (data / "UPPER_sat.jpg").rename(data / "UPPER_SAT.JPG")
    shutil.copy(data / "0001_sat.jpg", data / "notes.jpg")  # named neither way
    return data


def test_train_prepare_predict_and_mean_iou_find_the_same_pairs(folder, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        trained = {pair.id for pair in find_pairs(folder)}
        prepared = {source.source_id for source in find_sources(folder)}
    assert trained == prepared == set(IDS)
    assert caplog.text.count("'notes.jpg'") == 2  # train and prepare_deepglobe both say what they skipped
    predicted = {tile_id(path) for path in list_input_images(folder) if pair_role(path.name)}
    assert predicted == set(IDS)
    copies = tmp_path / "pred"
    copies.mkdir()
    for mask in folder.glob("*_mask.png"):
        shutil.copy(mask, copies / mask.name)
    assert {tile_id(gt) for gt, _ in _pair_masks(folder, copies).pairs} == set(IDS)


def test_the_naming_rule_takes_any_id_and_any_case():
    assert pair_role("a\nb_sat.JPEG") == ("sat", "a\nb")
    assert pair_role("x_Mask.png") == ("mask", "x")
    assert pair_role("x_sat.tif") is None and pair_role("_sat.jpg") is None and pair_role("x.jpg") is None
