"""GeoTIFF scenes: reading (fcn.inference.geo), streamed prediction (fcn.inference.scenes) and areas
(fcn.inference.areas); the command on .tif inputs is tests/inference/test_geo_cli.py.

Every GeoTIFF is written here with rasterio (32-210 px). Model: the tiny FCN8s of conftest (outputs
depend on the input over a wide receptive field).
"""

import csv
import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
keras = pytest.importorskip("keras")

from PIL import Image  # noqa: E402
from rasterio.crs import CRS  # noqa: E402
from rasterio.enums import ColorInterp  # noqa: E402

from fcn.core.errors import InputError  # noqa: E402
from fcn.core.palette import NUM_CLASSES  # noqa: E402
from fcn.data.pipeline import COURSE_TILE_GSD  # noqa: E402
from fcn.inference import geo, geo_writer  # noqa: E402
from fcn.inference.areas import class_areas, write_stats  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.inference.scenes import predict_scene, scene_batch_size, scene_scale  # noqa: E402
from fcn.model.checkpoints import ModelInfo  # noqa: E402
from helpers import landscape, read_tif, rgb_tif, write_tif  # noqa: E402

# rasterio's own from_origin and plain (CRS-less) TIFFs warn; neither is what these tests check.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


# ---------------------------------------------------------------- streaming equals the engine


@pytest.mark.parametrize("scale", [1.0, 0.6, 1.3])
def test_streamed_windows_equal_the_in_memory_sliding_window(tmp_path, tiny_fcn8s, scale):
    """Forced streaming (tile 64) reproduces Predictor's own sliding window, blending and rounding included."""
    rgb = landscape(150, 210, seed=2)
    source = rgb_tif(tmp_path / "scene.tif", rgb)
    predictor = Predictor(tiny_fcn8s, scale=scale, tile=64, overlap=16, batch_size=3)
    with geo.open_scene(source) as scene:
        result = predict_scene(
            predictor, scene, tmp_path / "m.tif", whole_max_pixels=0, max_batch_pixels=None, verbose=0
        )
    assert not result.whole and result.windows > 4 and result.batch_size == 3
    # Same windows, same batches, bit-identical working pixels and resizes: the very same mask.
    np.testing.assert_array_equal(read_tif(tmp_path / "m.tif")[0], predictor.predict_classes(rgb))
    assert result.class_counts.sum() == 150 * 210


def test_streamed_scene_skips_nodata_windows_with_the_same_answer(tmp_path, tiny_fcn8s):
    rgb = landscape(160, 160, seed=13)
    rgb[:, 90:] = 0  # a wide nodata margin: whole windows over nodata only
    source = rgb_tif(tmp_path / "scene.tif", rgb, nodata=0)
    predictor = Predictor(tiny_fcn8s, scale=0.7, tile=32, overlap=8)
    with geo.open_scene(source) as scene:
        streamed = predict_scene(predictor, scene, tmp_path / "s.tif", whole_max_pixels=0, verbose=0)
        whole = predict_scene(predictor, scene, tmp_path / "w.tif", verbose=0)
    assert streamed.skipped_windows > 0 and whole.whole
    np.testing.assert_array_equal(read_tif(tmp_path / "s.tif")[0], read_tif(tmp_path / "w.tif")[0])
    assert (read_tif(tmp_path / "s.tif")[0][:, 90:] == geo.NODATA_CLASS).all()
    np.testing.assert_array_equal(streamed.class_counts, whole.class_counts)


def test_scene_window_batch_is_capped_by_pixels(tiny_fcn8s):
    assert scene_batch_size(Predictor(tiny_fcn8s, tile=1024, batch_size=4)) == 1
    assert scene_batch_size(Predictor(tiny_fcn8s, tile=512, batch_size=8)) == 4
    assert scene_batch_size(Predictor(tiny_fcn8s, tile=512, batch_size=4, tta=True)) == 1
    assert scene_batch_size(Predictor(tiny_fcn8s, tile=256, batch_size=3)) == 3
    assert scene_batch_size(Predictor(tiny_fcn8s, tile=1024, batch_size=4), None) == 4


# ---------------------------------------------------------------- nodata


def test_nodata_value_pixels_come_out_as_nodata_and_are_not_counted(tmp_path, tiny_fcn8s):
    rgb = landscape(64, 96, seed=3)
    rgb[:, :20] = 0  # a black nodata border
    source = rgb_tif(tmp_path / "scene.tif", rgb, nodata=0)
    with geo.open_scene(source) as scene:
        result = predict_scene(Predictor(tiny_fcn8s), scene, tmp_path / "m.tif", verbose=0)
    classes = read_tif(tmp_path / "m.tif")[0]
    assert (classes[:, :20] == geo.NODATA_CLASS).all() and (classes[:, 20:] < NUM_CLASSES).all()
    assert result.nodata_pixels == 64 * 20 and result.class_counts.sum() == 64 * 76


@pytest.mark.parametrize("kind", ["alpha", "internal mask"])
@pytest.mark.parametrize("stream", [False, True])
def test_values_under_nodata_never_change_valid_predictions(tmp_path, tiny_fcn8s, kind, stream):
    rgb = landscape(96, 96, seed=4)
    valid = np.ones((96, 96), dtype=bool)
    valid[30:70, 40:96] = False
    outputs = []
    for name, hidden in (("a", 0), ("b", 255)):
        pixels = rgb.copy()
        pixels[~valid] = np.random.default_rng(hidden).integers(0, 256, (int((~valid).sum()), 3)) if hidden else 0
        bands = pixels.transpose(2, 0, 1)
        if kind == "alpha":
            bands = np.concatenate([bands, (valid * 255).astype(np.uint8)[None]])
            path = write_tif(
                tmp_path / f"{name}.tif",
                bands,
                colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
            )
        else:
            path = write_tif(tmp_path / f"{name}.tif", bands, mask=valid)
        predictor = Predictor(tiny_fcn8s, scale=0.8, tile=64, overlap=16)
        with geo.open_scene(path) as scene:
            assert scene.bands == (1, 2, 3)
            predict_scene(
                predictor, scene, tmp_path / f"{name}_mask.tif", whole_max_pixels=0 if stream else 10**9, verbose=0
            )
        outputs.append(read_tif(tmp_path / f"{name}_mask.tif")[0])
    assert (outputs[0][~valid] == geo.NODATA_CLASS).all() and (outputs[0][valid] < NUM_CLASSES).all()
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # The model does see context: the same pixels with the hidden area *valid* predict differently.
    plain = Predictor(tiny_fcn8s, scale=0.8, tile=64, overlap=16).predict_classes(
        np.where(valid[..., None], rgb, 255).astype(np.uint8)
    )
    assert (plain[valid] != outputs[0][valid]).any()


# ---------------------------------------------------------------- bands and values


def test_uint16_bands_map_their_2nd_and_98th_percentiles_to_0_and_255(tmp_path):
    rng = np.random.default_rng(5)
    bands = np.stack(
        [rng.integers(1000, 3000, (80, 80)), rng.integers(0, 60000, (80, 80)), rng.integers(100, 200, (80, 80))]
    ).astype(np.uint16)
    bands[:, :, :8] = 0  # nodata columns
    path = write_tif(tmp_path / "u16.tif", bands, nodata=0)
    with geo.open_scene(path) as scene:
        rgb, valid = scene.read()
        assert not valid[:, :8].any() and valid[:, 8:].all()
        for k in range(3):
            low, high = np.percentile(bands[k][:, 8:], [2, 98])
            assert scene.value_ranges[k] == pytest.approx((low, high))
            expected = np.clip(np.rint((bands[k][:, 8:] - low) * 255 / (high - low)), 0, 255)
            np.testing.assert_allclose(rgb[:, 8:, k], expected, atol=1)
        wide = rgb[:, 8:, 1]  # 0-60000: about 2 % of the pixels clip at each end
        assert (wide == 0).mean() == pytest.approx(0.02, abs=0.01) and (wide == 255).mean() == pytest.approx(
            0.02, abs=0.01
        )
    with geo.open_scene(path, value_range=(0, 60000)) as scene:
        rgb, _ = scene.read()
        np.testing.assert_array_equal(
            rgb[:, 8:, 1], np.rint(bands[1][:, 8:].astype(np.float64) * 255 / 60000).astype(np.uint8)
        )
    with pytest.raises(InputError, match="--value-range"):
        geo.open_scene(path, value_range=(5, 5))


def test_bands_follow_colour_interpretation_then_order_and_are_checked(tmp_path):
    rgb = landscape(40, 40, seed=6)
    bgrn = np.stack([rgb[..., 2], rgb[..., 1], rgb[..., 0], np.full((40, 40), 7, np.uint8)])
    tagged = write_tif(
        tmp_path / "bgrn.tif",
        bgrn,
        colorinterp=[ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined],
    )
    with geo.open_scene(tagged) as scene:
        assert scene.bands == (3, 2, 1)
        np.testing.assert_array_equal(scene.read()[0], rgb)
    with geo.open_scene(tagged, bands=(4,)) as scene:  # one band: grey
        assert (scene.read()[0] == 7).all()
    with pytest.raises(InputError) as info:
        geo.open_scene(tagged, bands=(1, 2, 5))
    assert str(tagged) in str(info.value) and "--bands 5" in str(info.value) and "4 bands" in str(info.value)


# ---------------------------------------------------------------- scale and areas


def test_scale_comes_from_the_pixel_size_and_geographic_crs_needs_input_gsd(tmp_path):
    rgb = landscape(32, 32)
    info = ModelInfo(train_scale=0.5, tile_gsd=COURSE_TILE_GSD)  # 2.39 m/px: course tiles trained at 256 px
    projected = rgb_tif(tmp_path / "utm.tif", rgb, pixel=0.5)
    feet = rgb_tif(tmp_path / "feet.tif", rgb, crs=CRS.from_epsg(2227), pixel=2.0)  # US survey feet
    degrees = rgb_tif(tmp_path / "wgs84.tif", rgb, crs=CRS.from_epsg(4326), pixel=0.00001)
    plain = rgb_tif(tmp_path / "plain.tif", rgb, crs=None)
    with geo.open_scene(projected) as scene:
        assert scene.gsd_m == 0.5 and not scene.is_geographic and scene.pixel_area_m2 == 0.25
        scale, reason = scene_scale(scene, info)
        assert scale == 0.5 / info.model_gsd == pytest.approx(0.209, abs=5e-4) and "0.5 m" in reason
        assert scene_scale(scene, info, scale=0.3) == (0.3, "--scale")
        assert scene_scale(scene, info, input_gsd=1.0)[0] == 1.0 / info.model_gsd
        with pytest.raises(InputError, match="ground sample distance") as error:
            scene_scale(scene, ModelInfo())  # a model that does not know its GSD
        assert str(projected) in str(error.value)
    with geo.open_scene(feet) as scene:
        assert scene.gsd_m == pytest.approx(2.0 * 1200 / 3937)
    with geo.open_scene(degrees) as scene:
        assert scene.is_geographic and scene.pixel_size_m is None and scene.pixel_area_m2 is None
        with pytest.raises(InputError, match="--input-gsd") as error:
            scene_scale(scene, info)
        assert str(degrees) in str(error.value)
        assert scene_scale(scene, info, input_gsd=COURSE_TILE_GSD)[0] == pytest.approx(0.5)
    with geo.open_scene(plain) as scene:
        assert scene.crs is None and scene_scale(scene, info)[0] == 0.5  # like a JPEG: the training scale


def test_class_areas_and_their_csv_and_json(tmp_path):
    rows = class_areas("scene.tif", [30, 10, 0, 0, 0, 0, 0], 4.0)
    assert [r.pixels for r in rows[:2]] == [30, 10] and rows[0].name == "urban"
    assert rows[0].fraction == 0.75 and rows[0].area_m2 == 120.0 and rows[0].area_ha == 0.012
    write_stats(tmp_path / "s.csv", rows)
    table = list(csv.DictReader((tmp_path / "s.csv").read_text().splitlines()))
    assert len(table) == NUM_CLASSES and table[1]["area_m2"] == "40.00" and table[1]["fraction"] == "0.250000"
    write_stats(tmp_path / "s.json", class_areas("a.png", [3, 1, 0, 0, 0, 0, 0], None))
    loaded = json.loads((tmp_path / "s.json").read_text())
    assert loaded[0]["fraction"] == 0.75 and loaded[0]["area_m2"] is None


# ---------------------------------------------------------------- errors and previews


def test_unreadable_and_missing_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 this is no tiff")
    for path in (broken, tmp_path / "missing.tif"):
        with pytest.raises(InputError) as info:
            geo.open_scene(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_overlay_preview_is_downsampled_and_marks_nodata(tmp_path, tiny_fcn8s):
    rgb = landscape(64, 96, seed=8)
    rgb[:, :32] = 0
    source = rgb_tif(tmp_path / "scene.tif", rgb, nodata=0)
    with geo.open_scene(source) as scene:
        predict_scene(Predictor(tiny_fcn8s), scene, tmp_path / "m.tif", verbose=0)
        assert geo_writer.write_overlay_preview(scene, tmp_path / "m.tif", tmp_path / "o.jpg", max_side=48) == (32, 48)
    preview = np.asarray(Image.open(tmp_path / "o.jpg"))
    assert preview.shape == (32, 48, 3)
    assert preview[:, :14].max() < 40  # nodata: the (black) scene, no class colour
