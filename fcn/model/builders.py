"""VGG16 fully convolutional networks: FCN32s, FCN16s and FCN8s (Long, Shelhamer & Darrell, 2015).

The layout follows the course seed exactly: Keras VGG16 conv blocks (``block1_conv1`` ...
``block5_pool``), ``fc_1`` (Conv2D 4096, 2x2, same) and ``fc_2`` (Conv2D 4096, 1x1), a 1x1 score conv,
bias-free transposed-conv upsampling with kernel = 2 x stride and, for FCN16s/FCN8s, 1x1 score convs
on ``block4_pool`` (and ``block3_pool``) fused by addition. Preprocessing (RGB 0-255 -> BGR minus the
ImageNet caffe mean) is a parameter-free layer inside the model, so a saved ``.keras`` file takes raw
RGB and nobody can get the VGG preprocessing wrong.

Input sides must be multiples of 32 (five 2x poolings). A fixed ``input_shape`` that is not is refused
here; with ``input_shape=(None, None, 3)`` a non-multiple input fails when called (FCN16s/FCN8s: the
skip additions do not line up) or, for FCN32s, yields an output smaller than the input.
``fcn.inference.engine`` pads such images (reflect) and crops the result back.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fcn import MODEL_NAMES
from fcn.core.palette import NUM_CLASSES
from fcn.model.weights import load_weights

# ImageNet channel means in BGR order, as Keras's "caffe" preprocessing for VGG16 uses.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

# (filters, convolutions) of the five VGG16 blocks, and the width of fc_1/fc_2.
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
FC_WIDTH = 4096
# Factors on the pool outputs before their 1x1 score layers in the "at-once" FCN8s (Shelhamer, Long &
# Darrell, 2016): the pool features are far larger than the coarse scores they are added to.
SKIP_SCALES = {"pool4": 0.01, "pool3": 0.0001}


@keras.saving.register_keras_serializable(package="fcn")
class CaffePreprocess(layers.Layer):
    """RGB in 0-255 -> BGR minus the ImageNet mean (what ImageNet VGG16 weights expect). No weights.

    Always computes in float32: under a bfloat16 policy, values near 255 would lose precision.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, inputs):
        bgr = keras.ops.flip(keras.ops.cast(inputs, "float32"), axis=-1)
        return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype="float32")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="fcn")
class BilinearUpsampling(keras.initializers.Initializer):
    """Conv2DTranspose kernel that performs bilinear interpolation, independently per channel.

    For a kernel of size ``2 * stride`` this is the FCN paper's initialisation of its learnable
    upsampling layers: channel ``i`` maps to channel ``i`` only.
    """

    def __call__(self, shape, dtype=None):
        size_h, size_w, out_channels, in_channels = shape
        if out_channels != in_channels:
            raise ValueError(f"bilinear upsampling needs as many input as output channels, got {shape}")
        kernel = np.zeros(shape, dtype="float32")
        kernel[:, :, range(in_channels), range(in_channels)] = _bilinear_kernel_2d(size_h, size_w)[..., None]
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


def _bilinear_kernel_2d(size_h: int, size_w: int) -> np.ndarray:
    """The separable bilinear interpolation filter of the given size, shape (size_h, size_w)."""

    def profile(size):
        factor = (size + 1) // 2
        center = factor - 1 if size % 2 == 1 else factor - 0.5
        return 1.0 - np.abs(np.arange(size) - center) / factor

    return np.outer(profile(size_h), profile(size_w)).astype("float32")


def _scaled(filters: int, width: float) -> int:
    return max(1, int(round(filters * width)))


def _vgg16_features(x, width, dtype):
    """The 13 VGG16 conv layers and 5 poolings; returns the outputs of block3/4/5_pool."""
    pools = []
    for block, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(
                _scaled(filters, width),
                3,
                padding="same",
                activation="relu",
                name=f"block{block}_conv{conv}",
                dtype=dtype,
            )(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool", dtype=dtype)(x)
        pools.append(x)
    return pools[2], pools[3], pools[4]


def _score(x, num_classes, name, zero_init, dtype):
    initializer = "zeros" if zero_init else "glorot_uniform"
    return layers.Conv2D(num_classes, 1, kernel_initializer=initializer, name=name, dtype=dtype)(x)


def _coarse_score_dtype(dtype):
    """Dtype policy of the ``score`` layer (1x1 conv from fc_2's 4096 channels to the classes).

    Under bfloat16 policies it computes in float32: with TensorFlow 2.21 on CPUs with AMX (Sapphire
    Rapids), oneDNN's bfloat16 backward pass of a 1x1 convolution from 4096 to fewer than 16
    channels corrupts the heap and kills the process (``malloc(): unaligned tcache chunk``;
    4096 -> 16 and 2048 -> 7 are fine). The layer holds under 0.01 % of the model's FLOPs (1/32 of the
    resolution), so float32 costs nothing measurable.
    """
    return "float32" if dtype is not None and "bfloat16" in str(dtype) else dtype


def _upsample(x, num_classes, factor, name, bilinear_init, dtype):
    initializer = BilinearUpsampling() if bilinear_init else "glorot_uniform"
    return layers.Conv2DTranspose(
        num_classes,
        2 * factor,
        strides=factor,
        padding="same",
        use_bias=False,
        kernel_initializer=initializer,
        name=name,
        dtype=dtype,
    )(x)


def _fcn(name, skips, input_shape, num_classes, fc1_kernel_size, paper_init, dropout, width, dtype, skip_scaling):
    """Build an FCN whose coarse score map is fused with the scores of the given pool layers."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = CaffePreprocess(name="preprocess")(inputs)
    pool3, pool4, pool5 = _vgg16_features(x, width, dtype)
    fc_width = _scaled(FC_WIDTH, width)
    x = layers.Conv2D(fc_width, fc1_kernel_size, padding="same", activation="relu", name="fc_1", dtype=dtype)(pool5)
    if dropout:
        x = layers.Dropout(dropout, name="fc_1_dropout", dtype=dtype)(x)
    x = layers.Conv2D(fc_width, 1, activation="relu", name="fc_2", dtype=dtype)(x)
    if dropout:
        x = layers.Dropout(dropout, name="fc_2_dropout", dtype=dtype)(x)
    x = _score(x, num_classes, "score", paper_init, _coarse_score_dtype(dtype))
    stride = 32
    for pool_name, pool in (("pool4", pool4), ("pool3", pool3))[: len(skips)]:
        x = _upsample(x, num_classes, 2, f"upscore_to_{pool_name}", paper_init, dtype)
        if skip_scaling:  # Keras's own parameter-free layer: older .keras files load unchanged
            pool = layers.Rescaling(SKIP_SCALES[pool_name], name=f"scale_{pool_name}", dtype=dtype)(pool)
        x = layers.Add(name=f"fuse_{pool_name}", dtype=dtype)(
            [x, _score(pool, num_classes, f"score_{pool_name}", paper_init, dtype)]
        )
        stride //= 2
    x = _upsample(x, num_classes, stride, f"upscore_{stride}x", paper_init, dtype)
    # float32 output even under mixed precision: a float16 softmax loses small probabilities.
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


# The pool layers whose scores each architecture fuses.
MODELS: dict[str, tuple[str, ...]] = dict(zip(MODEL_NAMES, ((), ("pool4",), ("pool4", "pool3"))))


def build_model(
    name: str,
    *,
    input_shape: tuple = (512, 512, 3),
    num_classes: int = NUM_CLASSES,
    weights: str | None = "imagenet",
    fc1_kernel_size: int = 2,
    paper_init: bool = True,
    dropout: float = 0.0,
    width: float = 1.0,
    dtype_policy: str | None = None,
    skip_scaling: bool = False,
) -> keras.Model:
    """Build an FCN by name.

    Args:
        name: one of ``"fcn32s"``, ``"fcn16s"``, ``"fcn8s"``.
        input_shape: (H, W, 3) with H and W multiples of 32, or ``(None, None, 3)`` for any size that
            is a multiple of 32 (e.g. large tiles at prediction time).
        num_classes: output channels of the softmax.
        weights: ``"imagenet"`` (VGG16 conv weights, see :mod:`fcn.model.weights`), ``None`` (random
            init), or a path to a ``.weights.h5`` / ``.keras`` file of the same architecture.
        fc1_kernel_size: kernel of ``fc_1``: 2 as in the course seed, 7 as in the FCN paper.
        paper_init: score layers start at zero and upsampling kernels as bilinear interpolation (FCN
            paper); False uses Glorot uniform for both.
        dropout: dropout rate after ``fc_1`` and ``fc_2`` (0 keeps the seed's exact layout).
        width: multiplies every conv and fc width (1: VGG16). Small widths (e.g. 1/16) build the same
            architecture in miniature for tests and demos; ImageNet weights need width 1.
        dtype_policy: Keras dtype policy for the layers, e.g. ``"mixed_bfloat16"``; None uses the
            global policy. Preprocessing and the softmax output stay float32.
        skip_scaling: FCN16s/FCN8s: multiply ``block4_pool`` by 0.01 and ``block3_pool`` by 0.0001
            before their score layers (:data:`SKIP_SCALES`, the "at-once" FCN8s of Shelhamer et al.,
            2016). No effect on FCN32s.

    Returns:
        A functional ``keras.Model`` mapping RGB 0-255 images (B, H, W, 3) to softmax probabilities
        (B, H, W, num_classes).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape}")
    for side in input_shape[:2]:
        if side is not None and side % 32:
            raise ValueError(f"input sides must be multiples of 32 (or None), got {input_shape}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    model = _fcn(
        name,
        MODELS[name],
        tuple(input_shape),
        num_classes,
        fc1_kernel_size,
        paper_init,
        dropout,
        width,
        dtype_policy,
        skip_scaling,
    )
    if weights is not None:
        load_weights(model, weights)
    return model


def _model_summary_table(model: keras.Model) -> list[tuple[str, str, int]]:
    """The architecture table the seed prints: (``"name (Type)"``, output shape, parameter count)."""
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)
        rows.append((f"{layer.name} ({layer.__class__.__name__})", str((None,) + shape[1:]), layer.count_params()))
    return rows


def format_summary(model: keras.Model, markdown: bool = False) -> str:
    """The architecture table (layer, output shape, parameters) as plain text or Markdown, with totals."""
    rows = _model_summary_table(model)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = model.count_params()
    totals = [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    if markdown:
        lines = ["| Layer (type) | Output shape | Param # |", "|---|---|---:|"]
        lines += [f"| {n} | {s} | {p:,} |" for n, s, p in rows]
        return "\n".join(lines + [""] + [f"{t}  " for t in totals])
    width_name = max(len("Layer (type)"), *(len(n) for n, _, _ in rows)) + 2
    width_shape = max(len("Output Shape"), *(len(s) for _, s, _ in rows)) + 2
    rule = "=" * (width_name + width_shape + 12)
    lines = [
        f'Model: "{model.name}"',
        rule,
        f"{'Layer (type)':<{width_name}}{'Output Shape':<{width_shape}}{'Param #':>12}",
        rule,
    ]
    lines += [f"{n:<{width_name}}{s:<{width_shape}}{p:>12,}" for n, s, p in rows]
    return "\n".join(lines + [rule] + totals)
