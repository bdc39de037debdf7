"""fcn.model.checkpoints: what a .keras file carries (state, scale), loading it, resuming from it."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.core.errors import InputError  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.model.checkpoints import (  # noqa: E402
    INFO_ENTRY,
    ModelInfo,
    load_model,
    read_checkpoint_state,
    read_model_info,
    resolve_model_path,
    save_checkpoint,
    with_precision,
)
from fcn.training.resume import load_checkpoint_for_resume  # noqa: E402
from helpers import conv_softmax_model, random_image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def compiled_model():
    model = conv_softmax_model(1)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    model.optimizer.build(model.trainable_variables)  # as training saves it (loading builds it too)
    return model


def test_state_and_model_info_travel_inside_the_file(tmp_path):
    path = tmp_path / "best.keras"
    info = ModelInfo(model="fcn8s", train_scale=0.5, tile_gsd=1.1953125)
    save_checkpoint(compiled_model(), path, {"epoch": 3, "val_miou": 0.5}, info)
    assert read_checkpoint_state(path) == {"epoch": 3, "val_miou": 0.5}
    assert read_model_info(path) == info
    assert info.model_gsd == pytest.approx(2.390625)
    stored = json.loads(zipfile.ZipFile(path).read(INFO_ENTRY))
    assert stored["class_names"][0] == "urban" and stored["palette"][0] == [0, 255, 255]
    # load_model attaches it, and the engine predicts at that scale by default.
    model = load_model(path)
    assert model.fcn_info == info and Predictor(model).scale == 0.5
    assert with_precision(model, "mixed_bfloat16").fcn_info == info


def test_scale_for_an_input_resolution():
    info = ModelInfo(train_scale=0.5, tile_gsd=1.1953125)
    assert info.scale_for() == 0.5
    assert info.scale_for(0.5) == pytest.approx(0.5 / 2.390625)  # a full DeepGlobe tile: 0.209
    with pytest.raises(ValueError, match="ground sample distance"):
        ModelInfo(train_scale=0.5).scale_for(0.5)
    with pytest.raises(ValueError, match="positive"):
        info.scale_for(0)


def test_checkpoints_without_info_take_it_from_their_run_config(tmp_path, tiles):
    run = tmp_path / "run"
    run.mkdir()
    conv_softmax_model(1).save(run / "best.keras")
    assert read_model_info(run / "best.keras") == ModelInfo()
    config = {"args": {"model": "fcn8s", "image_size": 32}, "resolved": {"train_dir": str(tiles[0])}}
    (run / "config.json").write_text(json.dumps(config))
    assert read_model_info(run / "best.keras") == ModelInfo(model="fcn8s", train_scale=0.5)  # 32 / 64-px tiles


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    model = compiled_model()
    path = tmp_path / "last.keras"
    save_checkpoint(model, path, {"epoch": 1})

    def dying_save(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(keras.Model, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, path, {"epoch": 2})
    monkeypatch.undo()
    assert read_checkpoint_state(path) == {"epoch": 1}
    keras.saving.load_model(path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.keras"]


def test_resume_repairs_a_best_checkpoint_lost_between_the_two_writes(tmp_path):
    model = compiled_model()
    save_checkpoint(model, tmp_path / "best.keras", {"epoch": 1, "best_epoch": 1})
    # Killed after last.keras of epoch 2 (a new best) was written, before best.keras was.
    save_checkpoint(model, tmp_path / "last.keras", {"epoch": 2, "best_val_miou": 0.6, "best_epoch": 2})
    _, state = load_checkpoint_for_resume(tmp_path)
    assert state["epoch"] == 2
    assert read_checkpoint_state(tmp_path / "best.keras")["epoch"] == 2
    (tmp_path / "best.keras").unlink()
    load_checkpoint_for_resume(tmp_path)
    assert read_checkpoint_state(tmp_path / "best.keras")["epoch"] == 2


def test_a_damaged_last_checkpoint_is_one_line_with_the_way_out(tmp_path):
    model = compiled_model()
    save_checkpoint(model, tmp_path / "best.keras", {"epoch": 1})
    save_checkpoint(model, tmp_path / "last.keras", {"epoch": 2})
    data = (tmp_path / "last.keras").read_bytes()
    (tmp_path / "last.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as caught:
        load_checkpoint_for_resume(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "last.keras" in message and "epoch 1" in message


def test_fcn_01_checkpoints_with_the_old_loss_still_load(tmp_path):
    path = tmp_path / "old.keras"
    compiled_model().save(path)
    # Rewrite the compile config as fcn 0.1 saved it: its own registered loss class.
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["compile_config"]["loss"] = {
        "module": None,
        "class_name": "SegmentationLoss",
        "registered_name": "fcn>SegmentationLoss",
        "config": {
            "name": "segmentation_loss",
            "reduction": "sum_over_batch_size",
            "class_weights": None,
            "ignore_unknown": True,
        },
    }
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, keras.losses.SparseCategoricalCrossentropy)
    assert loaded.loss.ignore_class == 6


@pytest.mark.slow
def test_import_fcn_is_all_plain_keras_needs_to_load_a_checkpoint(trained_run):
    code = (
        "import fcn, sys; assert 'keras' not in sys.modules; import keras; "
        f"m = keras.saving.load_model({str(trained_run / 'best.keras')!r}); print(m.layers[1].__class__.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "CaffePreprocess"


def test_run_directory_resolution(tmp_path, monkeypatch):
    import logging

    notes = []
    logger = logging.getLogger("fcn.model.checkpoints")
    monkeypatch.setattr(logger, "info", lambda message, *args: notes.append(message % args))
    (tmp_path / "last.keras").touch()
    assert resolve_model_path(tmp_path) == tmp_path / "last.keras"
    assert len(notes) == 1 and "best.keras" in notes[0]
    (tmp_path / "best.keras").touch()
    assert resolve_model_path(tmp_path) == tmp_path / "best.keras"
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(InputError, match="neither"):
        resolve_model_path(tmp_path / "empty_run")
    with pytest.raises(InputError, match="no such model"):
        resolve_model_path(tmp_path / "missing.keras")


def test_with_precision_changes_the_compute_dtype_but_not_the_output_layer(pixel_model):
    mixed = with_precision(pixel_model, "mixed_bfloat16")
    assert mixed.layers[2].dtype_policy.name == "mixed_bfloat16"
    assert mixed.layers[-1].dtype_policy.name == "float32"
    image = random_image(64, 64)
    np.testing.assert_allclose(
        Predictor(mixed).predict_probs(image), Predictor(pixel_model).predict_probs(image), atol=0.05
    )
