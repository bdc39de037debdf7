"""fcn.inference.geo_writer: class-map GeoTIFFs are signed, re-read before they are renamed, and a
failed write (GDAL does not always raise) leaves nothing under the final name."""

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from fcn.core.files import DiskFullError, WriteError  # noqa: E402
from fcn.core.mark import carries_mark  # noqa: E402
from fcn.inference import geo_writer  # noqa: E402
from fcn.inference.geo_writer import MaskWriter, verify_tiles  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _write(path, height=300, width=600):
    classes = np.random.default_rng(0).integers(0, 7, (height, width), dtype=np.uint8)
    with MaskWriter(path, height=height, width=width) as writer:
        writer.append(classes[:100])
        writer.append(classes[100:])
    return classes


def test_a_class_map_is_signed_and_whole(tmp_path):
    classes = _write(tmp_path / "s_mask.tif")
    with rasterio.open(tmp_path / "s_mask.tif") as dataset:
        np.testing.assert_array_equal(dataset.read(1), classes)
    assert carries_mark(tmp_path / "s_mask.tif")
    verify_tiles(tmp_path / "s_mask.tif", 300, 600)
    assert [p.name for p in tmp_path.iterdir()] == ["s_mask.tif"]


def test_a_cut_off_file_is_caught_by_the_re_read(tmp_path):
    _write(tmp_path / "s_mask.tif")
    data = (tmp_path / "s_mask.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        verify_tiles(tmp_path / "cut.tif", 300, 600)


@pytest.mark.parametrize("full", [False, True])
def test_a_write_gdal_did_not_complete_leaves_no_file(tmp_path, monkeypatch, full):
    """GDAL reports a failed flush at close on stderr only: the file on disk is cut. Simulated by cutting it."""
    real = geo_writer.verify_tiles

    def cut_then_verify(path, height, width):
        with open(path, "r+b") as handle:
            handle.truncate(1000)
        real(path, height, width)

    monkeypatch.setattr(geo_writer, "verify_tiles", cut_then_verify)
    monkeypatch.setattr(geo_writer, "_disk_nearly_full", lambda folder: full)
    target = tmp_path / "s_mask.tif"
    with pytest.raises(DiskFullError if full else WriteError) as info:
        _write(target)
    assert str(info.value).startswith(f"{target}: cannot write (") and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
