"""bench/flops.py: FLOPs counted from a model's layers (the benchmark's % of peak)."""

import pytest

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from bench.flops import count_flops  # noqa: E402
from fcn.model.builders import build_model  # noqa: E402


def tiny_model(input_shape=(8, 8, 3)):
    """conv 3x3 (3->4, same) -> pool 2 -> transposed conv 4x4 stride 2 (4->2) + 1x1 conv skip -> dense."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    skip = layers.Conv2D(2, 1)(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False)(x)
    x = layers.Add()([x, skip])
    outputs = layers.Dense(5)(x)
    return keras.Model(inputs, outputs)


# Multiply-adds of tiny_model on an 8x8x3 image, by hand:
#   conv 3x3:        8*8 outputs * 4 filters * (3*3*3)  = 6912
#   conv 1x1 skip:   8*8 outputs * 2 filters * (1*1*4)  =  512
#   transposed conv: 4*4 inputs  * 4 channels * (4*4*2) = 2048
#   dense:           8*8 positions * 2 inputs * 5 units = 640
#   pool, add, relu, biases: 0
TINY_MACS_8x8 = 6912 + 512 + 2048 + 640


def test_tiny_model_matches_hand_count():
    assert count_flops(tiny_model(), (8, 8, 3)) == 2 * TINY_MACS_8x8


def test_dynamic_sizes_take_the_given_input_shape():
    dynamic = tiny_model((None, None, 3))
    assert count_flops(dynamic, (8, 8, 3)) == 2 * TINY_MACS_8x8
    # Every layer here is convolutional or per-pixel, so the count scales with the image area.
    assert count_flops(dynamic, (16, 24, 3)) == 2 * TINY_MACS_8x8 * (16 * 24) // (8 * 8)


def test_strides_valid_padding_and_groups():
    inputs = keras.Input((9, 9, 4))
    outputs = layers.Conv2D(6, 3, strides=2, padding="valid", groups=2)(inputs)
    # Output 4x4x6, each output sums 3*3 kernel taps over 4/2 input channels.
    assert count_flops(keras.Model(inputs, outputs), (9, 9, 4)) == 2 * (4 * 4 * 6) * (3 * 3 * 2)


def test_nested_models_are_refused_rather_than_miscounted():
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, layers.Conv2D(1, 1)(tiny_model()(inputs)))
    with pytest.raises(ValueError, match="nested"):
        count_flops(outer, (8, 8, 3))


def test_fcn32s_equals_vgg16_plus_fc_and_score_layers():
    size = 64
    vgg_macs = 0
    side, channels = size, 3
    for filters, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(convs):
            vgg_macs += side * side * filters * 9 * channels
            channels = filters
        side //= 2
    # side is now 2 (64 / 32): fc_1 2x2 512->4096, fc_2 1x1 4096->4096, score 1x1 4096->7,
    # then the 64x upsampling (kernel 64x64, 7->7) applied to every one of the 2x2 score pixels.
    head_macs = side * side * (4096 * 4 * 512 + 4096 * 4096 + 7 * 4096 + 7 * 64 * 64 * 7)
    model = build_model("fcn32s", input_shape=(None, None, 3), weights=None)
    assert count_flops(model, (size, size, 3)) == 2 * (vgg_macs + head_macs)


def test_precision_policy_does_not_change_the_count():
    float32 = build_model("fcn8s", input_shape=(64, 64, 3), weights=None)
    bfloat16 = build_model("fcn8s", input_shape=(64, 64, 3), weights=None, dtype_policy="mixed_bfloat16")
    assert count_flops(float32, (64, 64, 3)) == count_flops(bfloat16, (64, 64, 3)) > 0


def test_several_inputs_are_refused():
    a, b = keras.Input((4,)), keras.Input((4,))
    with pytest.raises(ValueError, match="one input"):
        count_flops(keras.Model([a, b], layers.Add()([a, b])), (4,))
