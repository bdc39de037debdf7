"""Finding training and DeepGlobe JPEGs that decode only with the decoder's corruption warnings.

The check is :func:`fcn.core.jpeg_check.damaged_jpegs` (the one check of every command) with
TensorFlow's JPEG decoder, the one training uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fcn.core.jpeg_check import damaged_jpegs


def tf_decode(data: bytes) -> object:
    """Decode JPEG bytes with TensorFlow's libjpeg (raises its error on a file it cannot decode)."""
    import tensorflow as tf

    return tf.io.decode_jpeg(data, channels=3)


def jpeg_decoder_warnings(paths: Iterable[str | os.PathLike]) -> dict[Path, str]:
    """The JPEG files among ``paths`` that TensorFlow's decoder warns about or cannot decode, with its message.

    See :func:`fcn.core.jpeg_check.damaged_jpegs`.
    """
    return damaged_jpegs(paths, tf_decode)
