"""The segmentation loss: sparse categorical cross-entropy with optional class weights and
optional exclusion of Unknown pixels.

The loss class is registered with Keras (``fcn>SegmentationLoss``), so a saved ``.keras`` model
compiled with it loads again once ``fcn.losses`` has been imported.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from .palette import NUM_CLASSES, UNKNOWN


@keras.saving.register_keras_serializable(package="fcn")
class SegmentationLoss(keras.losses.Loss):
    """Per-pixel sparse categorical cross-entropy for (B, H, W) labels and (B, H, W, C) softmax.

    Each pixel's cross-entropy is multiplied by the weight of its true class (when
    ``class_weights`` is given). With ``ignore_unknown`` the Unknown pixels (class 6) count for
    nothing and the average is taken over the remaining pixels only (a batch with no counted pixel
    gives 0). The average is over counted pixels, not over the sum of weights, so multiplying all
    weights by k multiplies the loss by k. With both options off this is exactly
    ``keras.losses.SparseCategoricalCrossentropy()``.

    Args:
        class_weights: one weight per class (length = number of classes), or None for all 1.
        ignore_unknown: leave Unknown pixels out of the loss and of the average.
        name, reduction, dtype: as for ``keras.losses.Loss``.
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        ignore_unknown: bool = False,
        name: str = "segmentation_loss",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_unknown = bool(ignore_unknown)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        labels = ops.cast(y_true, "int32")
        if self.class_weights is not None and len(self.class_weights) != y_pred.shape[-1]:
            raise ValueError(
                f"{len(self.class_weights)} class weights for a prediction with {y_pred.shape[-1]} classes"
            )
        losses = ops.sparse_categorical_crossentropy(labels, y_pred, from_logits=False)
        if self.class_weights is not None:
            weights = ops.convert_to_tensor(self.class_weights, dtype=losses.dtype)
            losses = losses * ops.take(weights, labels)
        if self.ignore_unknown:
            counted = ops.not_equal(labels, UNKNOWN)
            losses = ops.where(counted, losses, ops.zeros_like(losses))
            if self.reduction in ("sum_over_batch_size", "mean"):
                # The reduction divides by all pixels; rescale so it averages over counted pixels
                # (the same convention Keras applies to masked losses).
                total = ops.cast(ops.size(counted), losses.dtype)
                num_counted = ops.sum(ops.cast(counted, losses.dtype))
                losses = losses * ops.divide_no_nan(total, num_counted)
        return losses

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=self.class_weights, ignore_unknown=self.ignore_unknown)
        return config


def segmentation_loss(
    class_weights: Sequence[float] | None = None, ignore_unknown: bool = False
) -> SegmentationLoss:
    """The loss to compile the model with.

    Args:
        class_weights: per-class weights (e.g. from :func:`fcn.data.median_frequency_weights`),
            length NUM_CLASSES (7); None for unweighted.
        ignore_unknown: exclude Unknown (class 6) pixels and average over the others.

    Returns:
        A :class:`SegmentationLoss`; plain sparse categorical cross-entropy when both are off.
    """
    if class_weights is not None and len(class_weights) != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} class weights, got {len(class_weights)}")
    return SegmentationLoss(class_weights=class_weights, ignore_unknown=ignore_unknown)
