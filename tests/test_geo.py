"""Tests of fcn.geo: GeoTIFF scenes in, georeferenced class maps out, areas per class.

Every GeoTIFF is written here with rasterio (64-300 px). Models: a random FCN8s (paper_init=False, so
its outputs depend on the input over a wide receptive field) and a 3x3 conv + softmax saved as a tiny
.keras file for the end-to-end comparison with the JPEG/PNG command.
"""

import csv
import json
import sys

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
keras = pytest.importorskip("keras")

from rasterio.crs import CRS  # noqa: E402
from rasterio.enums import ColorInterp  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

from fcn import geo  # noqa: E402
from fcn.errors import InputError  # noqa: E402
from fcn.images import read_mask  # noqa: E402
from fcn.models import build_model  # noqa: E402
from fcn.palette import NUM_CLASSES, PALETTE  # noqa: E402
from fcn.predict import Predictor, load_model, main  # noqa: E402

UTM = CRS.from_epsg(32633)
# rasterio's own from_origin and plain (CRS-less) TIFFs warn; neither is what these tests check.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


def landscape(height, width, seed=0):
    """Blocky random RGB (patches of 12 px plus noise): class maps with several classes and edges."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(0, 256, (height // 12 + 1, width // 12 + 1, 3))
    coarse = np.kron(patches, np.ones((12, 12, 1)))[:height, :width]
    return (0.75 * coarse + 0.25 * rng.integers(0, 256, (height, width, 3))).astype(np.uint8)


def write_tif(path, bands, *, crs=UTM, pixel=0.5, nodata=None, colorinterp=None, mask=None, dtype=None):
    """Write (C, H, W) bands as a GeoTIFF; ``mask`` (H, W) bool becomes an internal mask."""
    bands = np.asarray(bands)
    profile = dict(driver="GTiff", height=bands.shape[1], width=bands.shape[2], count=bands.shape[0], dtype=dtype or bands.dtype)
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(500_000, 4_000_000, pixel, pixel))
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
        if colorinterp is not None:
            dst.colorinterp = colorinterp
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
    return path


def read_tif(path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.colormap(1)


@pytest.fixture(scope="module")
def fcn8s():
    keras.utils.set_random_seed(0)
    return build_model("fcn8s", input_shape=(None, None, 3), weights=None, paper_init=False)


@pytest.fixture(scope="module")
def conv3_path(tmp_path_factory):
    """A 3x3 conv + softmax on RGB 0-255, saved as .keras (loads in well under a second)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 64)(inputs)
    x = keras.layers.Conv2D(
        NUM_CLASSES, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=1),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=2),
    )(x)
    path = tmp_path_factory.mktemp("model") / "conv3.keras"
    keras.Model(inputs, keras.layers.Softmax()(x)).save(path)
    return path


# ---------------------------------------------------------------- output GeoTIFF


def test_mask_keeps_crs_transform_and_carries_the_palette(tmp_path, fcn8s):
    rgb = landscape(96, 80)
    source = write_tif(tmp_path / "scene.tif", rgb.transpose(2, 0, 1), pixel=2.0)
    with geo.open_scene(source) as scene:
        result = geo.predict_scene(Predictor(fcn8s), scene, tmp_path / geo.scene_mask_name(source), verbose=0)
    assert result.mask.name == "scene_mask.tif" and result.whole
    classes, profile, colormap = read_tif(result.mask)
    with rasterio.open(source) as src:
        assert profile["crs"] == src.crs and profile["transform"] == src.transform
    assert profile["dtype"] == "uint8" and profile["count"] == 1 and profile["nodata"] == geo.NODATA_CLASS
    assert profile["tiled"] and profile["compress"] == "deflate"
    for index in range(NUM_CLASSES):
        assert colormap[index] == (*PALETTE[index], 255)
    assert colormap[geo.NODATA_CLASS][3] == 0
    assert classes.max() < NUM_CLASSES and len(np.unique(classes)) > 1
    assert result.class_counts.sum() == 96 * 80 and result.nodata_pixels == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


# ---------------------------------------------------------------- same answer as the image path


def test_auto_scale_geotiff_gives_exactly_the_png_command_mask(tmp_path, conv3_path):
    rgb = landscape(128, 120, seed=1)
    folder = tmp_path / "in"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(rgb).save(folder / "0001_sat.png")  # lossless: the same pixels as the GeoTIFF
    source = write_tif(tmp_path / "0001_sat.tif", rgb.transpose(2, 0, 1), pixel=0.5)
    model_gsd = geo.COURSE_TILE_GSD_M  # a model trained on course tiles at their native size
    with geo.open_scene(source) as scene:
        scale, reason = geo.scene_scale(scene, model_gsd_m=model_gsd)
        assert scale == pytest.approx(512 / 1224) and "0.4183" in reason
        geo.predict_scene(Predictor(load_model(conv3_path)), scene, tmp_path / "geo_mask.tif", scale=scale, verbose=0)
    assert main(["--model", str(conv3_path), "--input", str(folder), "--output", str(tmp_path / "out"), "--scale", repr(scale), "-q"]) == 0
    expected = read_mask(tmp_path / "out" / "0001_mask.png")
    np.testing.assert_array_equal(read_tif(tmp_path / "geo_mask.tif")[0], expected)
    assert len(np.unique(expected)) > 1


@pytest.mark.parametrize("scale", [1.0, 0.6, 1.3])
def test_streamed_windows_equal_the_in_memory_sliding_window(tmp_path, fcn8s, scale):
    """Forced streaming (tile 64) reproduces Predictor's own sliding window, blending included."""
    rgb = landscape(150, 210, seed=2)
    source = write_tif(tmp_path / "scene.tif", rgb.transpose(2, 0, 1))
    predictor = Predictor(fcn8s, scale=scale, tile=64, overlap=16, batch_size=3)
    with geo.open_scene(source) as scene:
        result = geo.predict_scene(predictor, scene, tmp_path / "m.tif", whole_max_pixels=0, verbose=0)
    assert not result.whole and result.windows > 4
    probs = predictor.predict_probs(rgb)
    top2 = np.sort(probs, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4  # exact ties may go either way with float rounding
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(read_tif(tmp_path / "m.tif")[0][clear], probs.argmax(-1)[clear])


# ---------------------------------------------------------------- nodata


def test_nodata_value_pixels_come_out_as_nodata_and_are_not_counted(tmp_path, fcn8s):
    rgb = landscape(64, 96, seed=3)
    rgb[:, :20] = 0  # a black nodata border
    source = write_tif(tmp_path / "scene.tif", rgb.transpose(2, 0, 1), nodata=0)
    with geo.open_scene(source) as scene:
        result = geo.predict_scene(Predictor(fcn8s), scene, tmp_path / "m.tif", verbose=0)
    classes = read_tif(tmp_path / "m.tif")[0]
    assert (classes[:, :20] == geo.NODATA_CLASS).all() and (classes[:, 20:] < NUM_CLASSES).all()
    assert result.nodata_pixels == 64 * 20 and result.class_counts.sum() == 64 * 76


@pytest.mark.parametrize("kind", ["alpha", "internal mask"])
@pytest.mark.parametrize("stream", [False, True])
def test_values_under_nodata_never_change_valid_predictions(tmp_path, fcn8s, kind, stream):
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
            path = write_tif(tmp_path / f"{name}.tif", bands, colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha])
        else:
            path = write_tif(tmp_path / f"{name}.tif", bands, mask=valid)
        predictor = Predictor(fcn8s, scale=0.8, tile=64, overlap=16)
        with geo.open_scene(path) as scene:
            assert scene.bands == (1, 2, 3)
            geo.predict_scene(predictor, scene, tmp_path / f"{name}_mask.tif", whole_max_pixels=0 if stream else 10**9, verbose=0)
        outputs.append(read_tif(tmp_path / f"{name}_mask.tif")[0])
    assert (outputs[0][~valid] == geo.NODATA_CLASS).all() and (outputs[0][valid] < NUM_CLASSES).all()
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # The model does see context: the same pixels with the hidden area *valid* predict differently.
    plain = Predictor(fcn8s, scale=0.8, tile=64, overlap=16).predict_classes(np.where(valid[..., None], rgb, 255).astype(np.uint8))
    assert (plain[valid] != outputs[0][valid]).any()


# ---------------------------------------------------------------- bands and values


def test_uint16_bands_map_their_2nd_and_98th_percentiles_to_0_and_255(tmp_path):
    rng = np.random.default_rng(5)
    bands = np.stack([rng.integers(1000, 3000, (80, 80)), rng.integers(0, 60000, (80, 80)), rng.integers(100, 200, (80, 80))]).astype(np.uint16)
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
        assert (wide == 0).mean() == pytest.approx(0.02, abs=0.01) and (wide == 255).mean() == pytest.approx(0.02, abs=0.01)
    with geo.open_scene(path, value_range=(0, 60000)) as scene:
        rgb, _ = scene.read()
        np.testing.assert_array_equal(rgb[:, 8:, 1], np.rint(bands[1][:, 8:].astype(np.float64) * 255 / 60000).astype(np.uint8))
    with pytest.raises(InputError, match="--value-range"):
        geo.open_scene(path, value_range=(5, 5))


def test_bands_follow_colour_interpretation_then_order_and_are_checked(tmp_path):
    rgb = landscape(40, 40, seed=6)
    bgrn = np.stack([rgb[..., 2], rgb[..., 1], rgb[..., 0], np.full((40, 40), 7, np.uint8)])
    tagged = write_tif(tmp_path / "bgrn.tif", bgrn, colorinterp=[ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined])
    with geo.open_scene(tagged) as scene:
        assert scene.bands == (3, 2, 1)
        np.testing.assert_array_equal(scene.read()[0], rgb)
    with geo.open_scene(tagged, bands=(4,)) as scene:  # one band: grey
        assert (scene.read()[0] == 7).all()
    with pytest.raises(InputError) as info:
        geo.open_scene(tagged, bands=(1, 2, 5))
    assert str(tagged) in str(info.value) and "--bands 5" in str(info.value) and "4 bands" in str(info.value)
    assert geo.parse_bands("3,2,1") == (3, 2, 1)
    for bad in ("1,2", "0,1,2", "r,g,b"):
        with pytest.raises(InputError, match="--bands"):
            geo.parse_bands(bad)


# ---------------------------------------------------------------- scale and areas


def test_scale_comes_from_the_pixel_size_and_geographic_crs_needs_input_gsd(tmp_path):
    rgb = landscape(32, 32).transpose(2, 0, 1)
    projected = write_tif(tmp_path / "utm.tif", rgb, pixel=0.5)
    feet = write_tif(tmp_path / "feet.tif", rgb, crs=CRS.from_epsg(2227), pixel=2.0)  # US survey feet
    degrees = write_tif(tmp_path / "wgs84.tif", rgb, crs=CRS.from_epsg(4326), pixel=0.00001)
    plain = write_tif(tmp_path / "plain.tif", rgb, crs=None)
    with geo.open_scene(projected) as scene:
        assert scene.gsd_m == 0.5 and not scene.is_geographic
        assert geo.scene_scale(scene, model_gsd_m=2.39)[0] == pytest.approx(0.5 / 2.39)
        assert geo.scene_scale(scene, model_gsd_m=2.39, scale=0.3)[0] == 0.3
    with geo.open_scene(feet) as scene:
        assert scene.gsd_m == pytest.approx(2.0 * 1200 / 3937)
    with geo.open_scene(degrees) as scene:
        assert scene.is_geographic and scene.pixel_size_m is None and scene.pixel_area_m2 is None
        with pytest.raises(InputError, match="--input-gsd") as info:
            geo.scene_scale(scene, model_gsd_m=2.39)
        assert str(degrees) in str(info.value)
        assert geo.scene_scale(scene, model_gsd_m=2.39, input_gsd_m=1.195)[0] == pytest.approx(0.5)
    with geo.open_scene(plain) as scene:
        assert scene.crs is None
        assert geo.scene_scale(scene, model_gsd_m=2.39, default_scale=0.7)[0] == 0.7
    assert geo.scale_for_gsd(0.5, geo.COURSE_TILE_GSD_M / 0.5) == pytest.approx(0.209, abs=5e-4)
    assert round(2448 * geo.scale_for_gsd(0.5, geo.COURSE_TILE_GSD_M)) == 1024


def test_stats_give_areas_for_a_known_pixel_size(tmp_path, fcn8s):
    rgb = landscape(64, 64, seed=7)
    rgb[:16] = 0
    source = write_tif(tmp_path / "scene.tif", rgb.transpose(2, 0, 1), pixel=2.0, nodata=0)  # 4 m² pixels
    with geo.open_scene(source) as scene:
        result = geo.predict_scene(Predictor(fcn8s), scene, tmp_path / "m.tif", verbose=0)
    classes = read_tif(tmp_path / "m.tif")[0]
    assert result.pixel_area_m2 == pytest.approx(4.0)
    rows = geo.class_areas("scene.tif", result.class_counts, result.pixel_area_m2)
    for row in rows:
        pixels = int((classes == row.class_index).sum())
        assert row.pixels == pixels and row.area_m2 == pytest.approx(4.0 * pixels) and row.area_ha == pytest.approx(pixels * 4e-4)
        assert row.fraction == pytest.approx(pixels / (48 * 64))
    assert sum(r.fraction for r in rows) == pytest.approx(1.0)

    geo.write_stats(tmp_path / "stats.csv", rows)
    with open(tmp_path / "stats.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == NUM_CLASSES and table[0]["name"] == "urban"
    assert [int(r["pixels"]) for r in table] == result.class_counts.tolist()
    assert float(table[0]["area_ha"]) == pytest.approx(rows[0].area_ha, abs=1e-4)
    geo.write_stats(tmp_path / "stats.json", geo.class_areas("plain.tif", [3, 1, 0, 0, 0, 0, 0], None))
    loaded = json.loads((tmp_path / "stats.json").read_text())
    assert loaded[0]["fraction"] == 0.75 and loaded[0]["area_m2"] is None


# ---------------------------------------------------------------- errors and previews


def test_unreadable_and_missing_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 this is no tiff")
    for path in (broken, tmp_path / "missing.tif"):
        with pytest.raises(InputError) as info:
            geo.open_scene(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_rasterio_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)  # makes `import rasterio` raise ImportError
    with pytest.raises(InputError) as info:
        geo.open_scene(tmp_path / "scene.tif")
    assert 'pip install -e ".[geo]"' in str(info.value) and "scene.tif" in str(info.value)


def test_overlay_preview_is_downsampled_and_marks_nodata(tmp_path, fcn8s):
    rgb = landscape(64, 96, seed=8)
    rgb[:, :32] = 0
    source = write_tif(tmp_path / "scene.tif", rgb.transpose(2, 0, 1), nodata=0)
    with geo.open_scene(source) as scene:
        geo.predict_scene(Predictor(fcn8s), scene, tmp_path / "m.tif", verbose=0)
        assert geo.write_overlay_preview(scene, tmp_path / "m.tif", tmp_path / "o.jpg", max_side=48) == (32, 48)
    from PIL import Image

    preview = np.asarray(Image.open(tmp_path / "o.jpg"))
    assert preview.shape == (32, 48, 3)
    assert preview[:, :14].max() < 40  # nodata: the (black) scene, no class colour
