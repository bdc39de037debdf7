"""The optimizer of a training run: Adam, a learning-rate schedule over the run's total steps, an
optional lower learning rate for the ImageNet encoder, and an optional moving average of the weights.

Everything here is built from Keras parts (``Adam``, ``CosineDecay`` with warm-up, ``MultiOptimizer``,
``use_ema``), so a ``.keras`` checkpoint stores and restores it without custom objects.
"""

from __future__ import annotations

import keras

SCHEDULES = ("constant", "cosine")
# Variable paths of the VGG16 encoder (block1_conv1/kernel ... block5_conv3/bias).
ENCODER_VARIABLES = r"block\d_conv\d/.*"


def _learning_rate_schedule(peak: float, total_steps: int, schedule: str = "constant", warmup: float = 0.0):
    """A learning rate (constant) or a Keras schedule defined over the run's total steps.

    Args:
        peak: the learning rate after warm-up.
        total_steps: optimizer steps of the whole run (epochs x steps per epoch).
        schedule: ``constant`` or ``cosine`` (decay to 1 % of the peak at the last step).
        warmup: fraction of ``total_steps`` spent ramping linearly from 1 % of the peak up to it.

    Returns:
        A float or a ``keras.optimizers.schedules.LearningRateSchedule``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    warmup_steps = int(round(warmup * total_steps))
    if schedule == "constant" and warmup_steps == 0:
        return float(peak)
    decay_steps = max(1, total_steps - warmup_steps)
    alpha = 1.0 if schedule == "constant" else 0.01
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.01 * peak, decay_steps, alpha=alpha, warmup_target=peak, warmup_steps=warmup_steps
    )


def make_optimizer(
    lr: float,
    total_steps: int,
    *,
    schedule: str = "constant",
    warmup: float = 0.0,
    encoder_lr_mult: float = 1.0,
    ema_momentum: float = 0.0,
):
    """Adam for a training run.

    Args:
        lr: peak learning rate of the new layers (and of the encoder when ``encoder_lr_mult`` is 1).
        total_steps: optimizer steps of the whole run; the schedule spans them.
        schedule, warmup: the learning-rate schedule (``constant``/``cosine``) and its warm-up fraction.
        encoder_lr_mult: the ImageNet encoder's learning rate relative to ``lr`` (a
            ``keras.optimizers.MultiOptimizer`` with one Adam per group when not 1).
        ema_momentum: keep an exponential moving average of the weights with this momentum
            (0: off); training evaluates and saves the averaged weights.

    Returns:
        A Keras optimizer.
    """
    if encoder_lr_mult <= 0:
        raise ValueError(f"encoder_lr_mult must be positive, got {encoder_lr_mult}")
    if not 0.0 <= ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must lie in [0, 1), got {ema_momentum}")
    ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}

    def adam(peak, name):
        return keras.optimizers.Adam(_learning_rate_schedule(peak, total_steps, schedule, warmup), name=name, **ema)

    if encoder_lr_mult == 1.0:
        return adam(lr, "adam")
    optimizers = keras.optimizers.OptimizerMap(
        adam(lr, "head"), {ENCODER_VARIABLES: adam(lr * encoder_lr_mult, "encoder")}
    )
    return keras.optimizers.MultiOptimizer(optimizers)


def _head_optimizer(optimizer):
    """The optimizer of the new layers (the default one of a MultiOptimizer)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        return optimizer.optimizers[-1]
    return optimizer


def uses_ema(optimizer) -> bool:
    """Whether the optimizer (or any optimizer inside it) keeps a moving average of the weights."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    inner = getattr(optimizer, "optimizers", [optimizer])
    return any(getattr(o, "use_ema", False) for o in inner)


def current_learning_rate(optimizer) -> float:
    """The learning rate the new layers get at the optimizer's current step."""
    head = _head_optimizer(optimizer)
    return float(keras.ops.convert_to_numpy(head.learning_rate))


class SwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`` that knows where the weights stand.

    With ``swap_on_epoch`` the averaged weights sit in the model from each epoch's end to the next
    epoch's start, so checkpoints hold them (prediction uses what validation scored) and the
    optimizer's average slots hold the raw weights. A run resumed from such a checkpoint starts in
    that swapped state (``swapped_in=True``) and must swap back before training on.
    """

    def __init__(self, swapped_in: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = swapped_in  # Keras's own flag for the state above
