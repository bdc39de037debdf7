"""fcn.data.integrity: JPEGs that decode only with the decoder's corruption warning are named."""

import io

import numpy as np
from PIL import Image

from fcn.data.integrity import jpeg_decoder_warnings


def _jpeg(seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_a_jpeg_damaged_in_the_middle_is_named_with_the_decoders_message(tmp_path):
    clean = tmp_path / "0001_sat.jpg"
    clean.write_bytes(_jpeg(0))
    damaged = bytearray(_jpeg(1))
    middle = len(damaged) // 2
    damaged[middle : middle + 2] = b"\xff\xd9"  # an end marker inside the scan; the real one is kept
    assert damaged.endswith(b"\xff\xd9")
    bad = tmp_path / "0002_sat.jpg"
    bad.write_bytes(bytes(damaged))
    with Image.open(bad) as img:
        img.load()  # Pillow decodes it without a word: why the check needs the decoder's own output
    png = tmp_path / "0003_mask.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)

    found = jpeg_decoder_warnings([clean, bad, png, tmp_path / "missing.jpg"])

    assert set(found) == {bad, tmp_path / "missing.jpg"}
    assert "Corrupt JPEG data" in found[bad] and "\n" not in found[bad]
    assert "cannot be read" in found[tmp_path / "missing.jpg"]
