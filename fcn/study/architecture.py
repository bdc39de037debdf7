"""The architecture table of a run's model at the course seed's input, for the study report.

TensorFlow is imported only when a table is built.
"""

from __future__ import annotations

import numpy as np

# The input the course seed prints its architecture table at.
SEED_INPUT_SHAPE = (512, 512, 3)


def architecture(model_name: str, *, fc1_kernel_size: int = 2, dropout: float = 0.0, width: float = 1.0) -> dict:
    """The seed-style architecture table of a model at the seed's 512x512x3 input.

    Args:
        model_name: ``fcn32s``, ``fcn16s`` or ``fcn8s``.
        fc1_kernel_size, dropout, width: the run's ``--fc1-kernel``, ``--dropout`` and ``--width``.

    Returns:
        dict with ``markdown`` (the table and totals), ``total_params``, ``trainable_params`` and
        ``input_shape``.
    """
    import keras

    from fcn.model.builders import build_model, format_summary

    model = build_model(
        model_name,
        input_shape=SEED_INPUT_SHAPE,
        weights=None,
        fc1_kernel_size=fc1_kernel_size,
        dropout=dropout,
        width=width,
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    result = {
        "markdown": format_summary(model, markdown=True),
        "total_params": int(model.count_params()),
        "trainable_params": trainable,
        "input_shape": list(SEED_INPUT_SHAPE),
    }
    del model
    keras.backend.clear_session()
    return result
