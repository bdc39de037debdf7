"""The training loss: Keras's sparse categorical cross-entropy, per pixel.

Class balancing is done with per-pixel sample weights (the weight of each pixel's true class, see
:func:`fcn.data.pipeline.make_dataset`), and ``--ignore-unknown`` with the loss's ``ignore_class``: the mean is
then over the other pixels only. No custom loss class is needed.
"""

from __future__ import annotations

import keras

from fcn.core.palette import UNKNOWN


def segmentation_loss(ignore_unknown: bool = False) -> keras.losses.Loss:
    """The loss to compile the model with.

    Args:
        ignore_unknown: leave Unknown (class 6) pixels out of the loss and of its average.

    Returns:
        ``keras.losses.SparseCategoricalCrossentropy`` over (B, H, W) labels and (B, H, W, C) softmax.
    """
    return keras.losses.SparseCategoricalCrossentropy(ignore_class=UNKNOWN if ignore_unknown else None)


@keras.saving.register_keras_serializable(package="fcn", name="SegmentationLoss")
class LegacySegmentationLoss:
    """Loads the loss of checkpoints written by fcn 0.1 (``fcn>SegmentationLoss``) as the built-in one.

    Those runs kept their class weights inside the loss; a resumed run takes them from its
    ``config.json`` and applies them as sample weights, as new runs do.
    """

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return segmentation_loss(ignore_unknown=bool(config.get("ignore_unknown")))
