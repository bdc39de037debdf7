import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.model.builders import IMAGENET_BGR_MEAN, BilinearUpsampling, CaffePreprocess, build_model, format_summary  # noqa: E402

SEED_PARAMS = {"fcn32s": 40_118_087, "fcn16s": 39_971_934, "fcn8s": 39_936_885}


@pytest.mark.parametrize("name", sorted(SEED_PARAMS))
def test_parameter_counts_match_the_seed(name):
    model = build_model(name, weights=None)
    assert model.count_params() == SEED_PARAMS[name]
    assert model.output_shape == (None, 512, 512, 7)
    assert model.get_layer("fc_1").kernel.shape == (2, 2, 512, 4096)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="fcn32s, fcn16s, fcn8s"):
        build_model("fcn4s", weights=None)


def test_fixed_shape_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("fcn8s", input_shape=(100, 96, 3), weights=None)


@pytest.mark.parametrize("name", ["fcn32s", "fcn8s"])
def test_any_multiple_of_32_with_dynamic_shape(name):
    model = build_model(name, input_shape=(None, None, 3), weights=None, width=1 / 16)
    for height, width in [(64, 96), (128, 32)]:
        out = model.predict(np.zeros((1, height, width, 3), "float32"), verbose=0)
        assert out.shape == (1, height, width, 7)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_paper_init_starts_uniform_and_bilinear():
    model = build_model("fcn8s", input_shape=(64, 64, 3), weights=None, width=1 / 16)
    for name in ("score", "score_pool4", "score_pool3"):
        assert not np.any(model.get_layer(name).kernel.numpy())
    out = model.predict(np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32"), verbose=0)
    np.testing.assert_allclose(out, 1 / 7, rtol=1e-6)
    kernel = model.get_layer("upscore_8x").kernel.numpy()
    assert kernel.shape == (16, 16, 7, 7)
    off_diagonal = kernel.copy()
    off_diagonal[:, :, range(7), range(7)] = 0
    assert not off_diagonal.any()
    # Each output pixel of a stride-8 bilinear kernel receives weights summing to 1.
    taps = kernel[:, :, 0, 0]
    for phase in range(8):
        assert taps[phase::8, phase::8].sum() == pytest.approx(1.0)


def test_bilinear_upsampling_reproduces_a_linear_ramp_inside():
    upsample = keras.layers.Conv2DTranspose(
        1, 4, strides=2, padding="same", use_bias=False, kernel_initializer=BilinearUpsampling()
    )
    ramp = np.arange(8, dtype="float32")[None, :, None, None] * np.ones((1, 1, 8, 1), "float32")
    out = upsample(ramp).numpy()[0, :, 8, 0]  # a middle column: no border effect across W
    steps = np.diff(out[2:-2])
    np.testing.assert_allclose(steps, 0.5, atol=1e-6)  # interpolates halfway between input pixels


def test_paper_init_off_uses_random_kernels():
    model = build_model("fcn16s", input_shape=(64, 64, 3), weights=None, paper_init=False, width=1 / 16)
    assert np.any(model.get_layer("score").kernel.numpy())


def test_fc1_kernel_size_option():
    model = build_model("fcn32s", input_shape=(64, 64, 3), weights=None, fc1_kernel_size=7)
    assert model.get_layer("fc_1").kernel.shape == (7, 7, 512, 4096)


def test_preprocess_is_bgr_minus_mean_without_parameters():
    layer = CaffePreprocess()
    rgb = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    np.testing.assert_allclose(
        layer(rgb).numpy()[0, 0, 0], np.array([30.0, 20.0, 10.0]) - np.array(IMAGENET_BGR_MEAN), rtol=1e-6
    )
    assert layer.count_params() == 0


def test_mixed_precision_keeps_float32_softmax():
    model = build_model("fcn8s", input_shape=(64, 64, 3), weights=None, dtype_policy="mixed_bfloat16", width=1 / 16)
    assert model.get_layer("block3_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("block3_conv1").kernel.dtype == "float32"
    out = model(np.zeros((1, 64, 64, 3), "float32"))
    assert out.dtype == "float32"
    # The 4096 -> 7 score conv stays float32 under bfloat16 (oneDNN's AMX bf16 backward of that shape
    # corrupts the heap, see models._coarse_score_dtype); the skip scores and upsamplings do not.
    assert model.get_layer("score").compute_dtype == "float32"
    assert model.get_layer("score_pool4").compute_dtype == "bfloat16"
    assert model.get_layer("upscore_to_pool4").compute_dtype == "bfloat16"
    half = build_model("fcn32s", input_shape=(64, 64, 3), weights=None, dtype_policy="mixed_float16")
    assert half.get_layer("score").compute_dtype == "float16"


def test_keras_file_round_trip(tmp_path):
    model = build_model("fcn8s", input_shape=(None, None, 3), weights=None, width=1 / 16)
    rng = np.random.default_rng(1)
    for name in ("score", "score_pool4", "score_pool3"):  # leave the uniform start: outputs must differ per pixel
        layer = model.get_layer(name)
        layer.kernel.assign(rng.normal(0, 0.01, layer.kernel.shape).astype("float32"))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.get_layer("preprocess"), CaffePreprocess)
    assert isinstance(restored.get_layer("upscore_8x").kernel_initializer, BilinearUpsampling)
    images = rng.uniform(0, 255, (2, 64, 96, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    assert expected.std() > 1e-4
    np.testing.assert_allclose(restored.predict(images, verbose=0), expected, atol=1e-6)


def test_bilinear_initializer_survives_serialisation_as_the_bilinear_kernel():
    restored = keras.initializers.deserialize(keras.initializers.serialize(BilinearUpsampling()))
    kernel = keras.ops.convert_to_numpy(restored((4, 4, 2, 2)))  # 2x upsampling: a 4x4 kernel per channel
    bilinear = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(kernel[:, :, 0, 0], bilinear)
    np.testing.assert_allclose(kernel[:, :, 1, 1], bilinear)
    assert not kernel[:, :, 0, 1].any() and not kernel[:, :, 1, 0].any()  # channel i maps to channel i only


def test_summary_table_lists_layers_and_totals():
    text = format_summary(build_model("fcn32s", weights=None))
    assert "block5_pool (MaxPooling2D)" in text and "(None, 16, 16, 512)" in text
    assert "fc_1 (Conv2D)" in text and "8,392,704" in text
    assert "Total params: 40,118,087" in text
    markdown = format_summary(build_model("fcn32s", weights=None), markdown=True)
    assert markdown.startswith("| Layer (type) | Output shape | Param # |")


def test_width_scales_every_layer_but_keeps_the_architecture():
    full = build_model("fcn8s", weights=None)
    tiny = build_model("fcn8s", weights=None, width=1 / 16)
    assert [layer.name for layer in tiny.layers] == [layer.name for layer in full.layers]
    assert tiny.get_layer("block1_conv1").filters == 4 and tiny.get_layer("fc_2").filters == 256
    assert tiny.get_layer("score").filters == 7 and tiny.output_shape == full.output_shape
    assert tiny.count_params() < full.count_params() / 200
    with pytest.raises(ValueError, match="width"):
        build_model("fcn8s", weights=None, width=0)
