"""The mark says what kind of file fcn wrote: data (the demo's and prepare_deepglobe's tiles and ground truth)
is never replaced by a prediction without --overwrite; results, old marks included, stay replaceable."""

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from fcn.core.errors import InputError
from fcn.core.files import DATASET_KIND, signature_kind
from fcn.core.images import write_mask
from fcn.core.mark import check_replaceable, image_mark
from fcn.data.deepglobe import SourcePair, TileParameters, convert_source
from fcn.data.synthetic import make_synthetic_dataset
from fcn.inference.folder import plan_jobs

CLASSES = np.zeros((8, 8), np.uint8)


def test_data_fcn_wrote_is_refused_and_results_are_replaced(tmp_path):
    write_mask(tmp_path / "truth_mask.png", CLASSES, DATASET_KIND)
    write_mask(tmp_path / "result_mask.png", CLASSES)
    with pytest.raises(InputError, match="truth_mask.png: exists and is data fcn wrote.*--overwrite"):
        check_replaceable(tmp_path / "truth_mask.png")
    check_replaceable(tmp_path / "truth_mask.png", overwrite=True)
    check_replaceable(tmp_path / "result_mask.png")


def test_an_old_mark_is_a_result(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "fcn 0.1.0")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "old_mask.png", pnginfo=info)
    assert signature_kind(image_mark(tmp_path / "old_mask.png")) is None
    check_replaceable(tmp_path / "old_mask.png")


def test_the_demo_and_prepare_deepglobe_mark_their_files_as_data(tmp_path):
    train, val = make_synthetic_dataset(tmp_path / "demo", n_train=1, n_val=1, size=16)
    source = tmp_path / "dg"
    source.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "1_sat.jpg")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(source / "1_mask.png")
    pair = SourcePair("1", source / "1_sat.jpg", source / "1_mask.png")
    assert convert_source(pair, "train", tmp_path / "out", TileParameters(size=8, grid=1)).error is None
    written = [*train.iterdir(), *val.iterdir(), *(tmp_path / "out" / "train").iterdir()]
    assert len(written) == 6 and all(signature_kind(image_mark(p)) == DATASET_KIND for p in written)


def test_predict_into_a_copy_of_the_demos_validation_folder_is_refused(tmp_path):
    _, val = make_synthetic_dataset(tmp_path / "demo", n_train=1, n_val=1, size=16)
    tile = next(val.glob("*_sat.jpg"))
    with pytest.raises(InputError, match="_mask.png: exists and is data fcn wrote"):
        plan_jobs(tile, val)
    assert len(plan_jobs(tile, val, overwrite=True)) == 1
