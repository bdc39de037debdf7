"""Counting the FLOPs of a Keras model from its layers, for ``bench/throughput.py``'s % of peak."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def count_flops(model: keras.Model, input_shape: tuple) -> int:
    """Forward-pass FLOPs of one image, counted from the model's layers.

    Convention: one multiply-add is 2 FLOPs, and only the layers that do multiply-adds are counted:
    ``Conv1D/2D/3D`` (2 x output positions x output channels x kernel volume x input channels per
    group), ``Conv1D/2D/3DTranspose`` (2 x input positions x input channels x kernel volume x output
    channels: every input pixel is multiplied into a whole kernel) and ``Dense``. Biases,
    activations, pooling, additions, preprocessing and the softmax are cheap elementwise work and
    count 0. A training step is about 3x the forward FLOPs (forward, gradient of the activations,
    gradient of the weights); that factor is the caller's business.

    Args:
        model: a functional Keras model with one input and no nested models. A layer shared by
            several calls is counted once, at its first call.
        input_shape: the shape of one input without the batch axis, e.g. ``(512, 512, 3)``; it
            gives the sizes the model's ``None`` dimensions take.

    Returns:
        FLOPs of one forward pass on one input (an int).
    """
    if len(model.inputs) != 1:
        raise ValueError(f"count_flops needs a model with one input, {model.name} has {len(model.inputs)}")
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ValueError(f"count_flops cannot look inside nested models ({', '.join(nested)}) of {model.name}")
    specs = {id(model.inputs[0]): keras.KerasTensor((1, *input_shape), dtype="float32")}
    flops = 0
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        inputs = keras.tree.map_structure(lambda tensor: specs[id(tensor)], layer.input)
        outputs = layer.compute_output_spec(inputs)
        if isinstance(inputs, keras.KerasTensor):  # layers with several inputs (Add...) are elementwise
            flops += _layer_flops(layer, tuple(inputs.shape), tuple(outputs.shape))
        for tensor, spec in zip(keras.tree.flatten(layer.output), keras.tree.flatten(outputs)):
            specs[id(tensor)] = spec
    return int(flops)


def _layer_flops(layer, input_shape: tuple, output_shape: tuple) -> int:
    """2 x multiply-adds of one call of ``layer`` (0 for layers without multiply-adds)."""

    def spatial_and_channels(shape):
        channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
        return (shape[2:], shape[1]) if channels_first else (shape[1:-1], shape[-1])

    transposed = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
    if isinstance(layer, transposed):
        in_positions, in_channels = spatial_and_channels(input_shape)
        return 2 * int(np.prod(in_positions)) * in_channels * int(np.prod(layer.kernel_size)) * layer.filters
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        in_channels = spatial_and_channels(input_shape)[1]
        out_positions, out_channels = spatial_and_channels(output_shape)
        per_output = int(np.prod(layer.kernel_size)) * in_channels // layer.groups
        return 2 * int(np.prod(out_positions)) * out_channels * per_output
    if isinstance(layer, layers.Dense):
        return 2 * int(np.prod(input_shape[:-1])) * input_shape[-1] * layer.units
    return 0
