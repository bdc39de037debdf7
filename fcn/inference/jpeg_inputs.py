"""Damaged JPEG inputs of ``fcn-predict``: the damaged-JPEG check of every command, with the decoder at hand.

:func:`fcn.core.jpeg_check.damaged_jpegs` needs a libjpeg that reports its warnings. A ``.keras`` model
brings TensorFlow, whose decoder training uses too; an exported model runs without TensorFlow, so
GDAL's libjpeg (rasterio, its warnings made errors) is used when TensorFlow is not loaded. GDAL stops
at damage inside the scan but does not see bytes left over after it; without either library the
inputs are not checked (said at debug level).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Sequence

from fcn.core.jpeg_check import Decoder, damaged_jpeg_error, damaged_jpegs


def tf_decode(data: bytes) -> object:
    """Decode JPEG bytes with TensorFlow's libjpeg (raises its error on a file it cannot decode)."""
    import tensorflow as tf

    return tf.io.decode_jpeg(data, channels=3)


def gdal_decode(data: bytes) -> None:
    """Decode JPEG bytes with GDAL's libjpeg (rasterio), its warnings raised as errors (the libjpeg message)."""
    import rasterio
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: a plain JPEG has no georeference
        try:
            with rasterio.Env(GDAL_ERROR_ON_LIBJPEG_WARNING=True), MemoryFile(data) as memory, memory.open() as dataset:
                dataset.read()
        except Exception as err:
            cause = err
            while (cause.__cause__ or cause.__context__) is not None:
                cause = cause.__cause__ or cause.__context__
            raise ValueError(str(cause).removeprefix("libjpeg: ")) from None


def jpeg_decoder(tensorflow: bool) -> Decoder | None:
    """TensorFlow's decoder when ``tensorflow`` (a ``.keras`` model) or already loaded, else GDAL's, else None."""
    if tensorflow or "tensorflow" in sys.modules:
        return tf_decode
    if importlib.util.find_spec("rasterio") is not None:
        return gdal_decode
    return None


def sound_images(jobs: Sequence, failures, decode: Decoder | None) -> list:
    """The image jobs whose JPEG decodes cleanly; the others go to ``failures`` (one error line each).

    Runs before the prediction's threads start (the check redirects file descriptor 2).
    """
    damaged = damaged_jpegs([job.image for job in jobs], decode)
    for path, message in damaged.items():
        failures.add(path, damaged_jpeg_error(path, message))
    return [job for job in jobs if job.image not in damaged]
