"""fcn.inference.jpeg_inputs: without TensorFlow, predict checks JPEGs with GDAL's libjpeg."""

import io

import numpy as np
import pytest
from PIL import Image

from fcn.core.jpeg_check import damaged_jpegs
from fcn.inference.jpeg_inputs import gdal_decode, jpeg_decoder, tf_decode

pytest.importorskip("rasterio")


def test_gdal_names_damage_inside_the_scan(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    clean, damaged = tmp_path / "clean.jpg", tmp_path / "damaged.jpg"
    clean.write_bytes(buffer.getvalue())
    data = bytearray(buffer.getvalue())
    data[len(data) // 2 : len(data) // 2 + 2] = b"\xff\xd9"  # an end marker inside the scan; the real one kept
    damaged.write_bytes(bytes(data))
    found = damaged_jpegs([clean, damaged], gdal_decode)
    assert list(found) == [damaged] and "Corrupt JPEG data" in found[damaged]


def test_the_decoder_is_tensorflows_for_keras_models():
    assert jpeg_decoder(tensorflow=True) is tf_decode
    assert jpeg_decoder(tensorflow=False) in (tf_decode, gdal_decode)  # TensorFlow's when already loaded
