"""GeoTIFF scenes: reading (fcn.inference.geo), streamed prediction (fcn.inference.scenes), areas (fcn.inference.areas), and the
fcn-predict command on .tif inputs.

Every GeoTIFF is written here with rasterio (32-210 px). Models: the tiny FCN8s of conftest (outputs
depend on the input over a wide receptive field) and a 3x3 conv + softmax saved as a tiny .keras file
for the command-line tests.
"""

import csv
import json
import sys

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
keras = pytest.importorskip("keras")

from PIL import Image  # noqa: E402
from rasterio.crs import CRS  # noqa: E402
from rasterio.enums import ColorInterp  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

from fcn.cli.common import run_cli  # noqa: E402
from fcn.cli.predict import main  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.core.images import read_mask  # noqa: E402
from fcn.core.palette import NUM_CLASSES, PALETTE  # noqa: E402
from fcn.data.pipeline import COURSE_TILE_GSD  # noqa: E402
from fcn.inference import geo, geo_writer  # noqa: E402
from fcn.inference.areas import class_areas, write_stats  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.inference.scenes import predict_scene, scene_batch_size, scene_scale  # noqa: E402
from fcn.model.checkpoints import ModelInfo, save_checkpoint  # noqa: E402
from helpers import conv_softmax_model  # noqa: E402

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


def write_tif(path, bands, *, crs=UTM, pixel=0.5, nodata=None, colorinterp=None, mask=None):
    """Write (C, H, W) bands as a GeoTIFF; ``mask`` (H, W) bool becomes an internal mask."""
    bands = np.asarray(bands)
    profile = dict(driver="GTiff", height=bands.shape[1], width=bands.shape[2], count=bands.shape[0], dtype=bands.dtype)
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


def rgb_tif(path, rgb, **kwargs):
    return write_tif(path, rgb.transpose(2, 0, 1), **kwargs)


def read_tif(path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.colormap(1)


def run(argv, capsys):
    code = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def info_model(tmp_path_factory):
    """A 3x3 conv + softmax saved with ModelInfo(train_scale=0.5, tile_gsd=1.2): trained at 2.4 m/px."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_checkpoint(conv_softmax_model(3, seed=4), path, {}, ModelInfo(model="test", train_scale=0.5, tile_gsd=1.2))
    return path


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


# ---------------------------------------------------------------- the command on GeoTIFFs


def test_cli_geotiff_gives_a_georeferenced_class_map_and_areas(tmp_path, info_model, capsys):
    rgb = landscape(64, 80, seed=9)
    rgb[:16] = 0
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = rgb_tif(inputs / "scene.tif", rgb, pixel=2.0, nodata=0)  # 4 m² pixels
    Image.fromarray(landscape(40, 40, seed=10)).save(inputs / "tile.png")
    code, out, err = run(
        [
            "--model",
            info_model,
            "--input",
            inputs,
            "--output",
            tmp_path / "out",
            "--overlay",
            tmp_path / "ov",
            "--stats",
            tmp_path / "stats.csv",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert (
        "scene.tif: 64x80 px, predicting at scale 0.8333 (pixel size 2 m from the CRS, model trained at 2.4 m/px)"
        in out
    )
    classes, profile, colormap = read_tif(tmp_path / "out" / "scene_mask.tif")
    with rasterio.open(source) as src:
        assert profile["crs"] == src.crs and profile["transform"] == src.transform
    assert profile["dtype"] == "uint8" and profile["count"] == 1 and profile["nodata"] == geo.NODATA_CLASS
    assert profile["tiled"] and profile["compress"] == "deflate"
    assert all(colormap[index] == (*PALETTE[index], 255) for index in range(NUM_CLASSES))
    assert colormap[geo.NODATA_CLASS][3] == 0
    assert (classes[:16] == geo.NODATA_CLASS).all() and (classes[16:] < NUM_CLASSES).all()
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["scene_overlay.jpg", "tile_overlay.jpg"]
    assert (tmp_path / "out" / "tile_mask.png").is_file()
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no temporary file left

    table = list(csv.DictReader((tmp_path / "stats.csv").read_text().splitlines()))
    assert [row["input"] for row in table] == ["scene.tif"] * NUM_CLASSES + ["tile.png"] * NUM_CLASSES + [
        "(all)"
    ] * NUM_CLASSES  # the region's totals (tests/inference/test_region.py)
    table = table[: 2 * NUM_CLASSES]
    for row in table[:NUM_CLASSES]:
        pixels = int((classes == int(row["class_index"])).sum())
        assert int(row["pixels"]) == pixels and float(row["area_m2"]) == 4.0 * pixels
        assert float(row["area_ha"]) == pytest.approx(4e-4 * pixels, abs=1e-4)
        assert float(row["fraction"]) == pytest.approx(pixels / (48 * 80), abs=1e-6)
    tile_mask = read_mask(tmp_path / "out" / "tile_mask.png")
    for row in table[NUM_CLASSES:]:  # a plain image without --input-gsd: pixels and shares, no area
        assert int(row["pixels"]) == (tile_mask == int(row["class_index"])).sum() and row["area_m2"] == ""


def test_cli_same_answer_geotiff_automatic_scale_and_png_at_that_scale(tmp_path, info_model, capsys):
    """A projected GeoTIFF at the automatic scale gives exactly the PNG's mask at --scale of that value."""
    rgb = landscape(128, 120, seed=1)
    pixel = 0.9
    scale = pixel / ModelInfo(train_scale=0.5, tile_gsd=1.2).model_gsd  # 0.375: not 1, the resize matters
    (tmp_path / "png").mkdir()
    Image.fromarray(rgb).save(tmp_path / "png" / "0001_sat.png")  # lossless: the same pixels
    source = rgb_tif(tmp_path / "0001_sat.tif", rgb, pixel=pixel)
    code, out, err = run(["--model", info_model, "--input", source, "--output", tmp_path / "tif-out", "-q"], capsys)
    assert code == 0, err
    assert f"predicting at scale {scale:.4g} (pixel size 0.9 m" in out
    code, out, err = run(
        [
            "--model",
            info_model,
            "--input",
            tmp_path / "png",
            "--output",
            tmp_path / "png-out",
            "--scale",
            repr(scale),
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    expected = read_mask(tmp_path / "png-out" / "0001_mask.png")
    np.testing.assert_array_equal(read_tif(tmp_path / "tif-out" / "0001_mask.tif")[0], expected)
    assert len(np.unique(expected)) > 1
    # The same mask comes from --input-gsd on the PNG: one scale rule for both.
    code, _, err = run(
        [
            "--model",
            info_model,
            "--input",
            tmp_path / "png",
            "--output",
            tmp_path / "gsd-out",
            "--input-gsd",
            "0.9",
            "--stats",
            tmp_path / "s.json",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    np.testing.assert_array_equal(read_mask(tmp_path / "gsd-out" / "0001_mask.png"), expected)
    areas = json.loads((tmp_path / "s.json").read_text())
    assert sum(row["area_m2"] for row in areas) == pytest.approx(128 * 120 * 0.81)


def test_cli_bad_geotiffs_are_one_line_each_and_the_others_are_written(tmp_path, info_model, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rgb_tif(inputs / "good.tif", landscape(40, 48))
    (inputs / "broken.tif").write_bytes(b"II*\x00 this is no tiff")
    rgb_tif(inputs / "wgs84.tif", landscape(40, 40), crs=CRS.from_epsg(4326), pixel=0.00001)
    Image.fromarray(landscape(32, 32)).save(inputs / "a.png")
    code, out, err = run(["--model", info_model, "--input", inputs, "--output", tmp_path / "out", "-q"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert "broken.tif" in lines[0] and "wgs84.tif" in lines[1] and "--input-gsd" in lines[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_mask.png", "good_mask.tif"]
    assert "2 inputs failed" in out
    # Given --input-gsd, the geographic scene runs.
    code, out, err = run(
        [
            "--model",
            info_model,
            "--input",
            inputs / "wgs84.tif",
            "--output",
            tmp_path / "out2",
            "--input-gsd",
            "1.2",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert "predicting at scale 0.5 (--input-gsd 1.2 m/px" in out and (tmp_path / "out2" / "wgs84_mask.tif").is_file()


def test_cli_geotiff_flag_errors_are_one_line(tmp_path, info_model, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = rgb_tif(inputs / "s.tif", landscape(32, 32))
    Image.fromarray(landscape(32, 32)).save(inputs / "a.png")
    cases = [
        (["--input", source, "--bands", "1,2,4"], "--bands 4 is out of range"),
        (["--input", source, "--bands", "1,2"], "argument --bands"),
        (["--input", source, "--value-range", "9", "1"], "--value-range"),
        (["--input", inputs / "a.png", "--bands", "3,2,1"], "apply to .tif/.tiff inputs"),
        (["--input", source, "--stats", tmp_path / "s.txt"], ".csv or .json"),
    ]
    for flags, message in cases:
        code, _, err = run(["--model", info_model, "--output", tmp_path / "out", "-q", *flags], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (flags, err)
    assert not (tmp_path / "out" / "s_mask.tif").exists()


def test_cli_without_rasterio_skips_the_geotiffs_in_one_line(tmp_path, info_model, capsys, monkeypatch):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("x.tif", "y.tif"):
        rgb_tif(inputs / name, landscape(32, 32))
    Image.fromarray(landscape(32, 32)).save(inputs / "a.png")
    monkeypatch.setitem(sys.modules, "rasterio", None)  # makes `import rasterio` raise ImportError
    code, out, err = run(["--model", info_model, "--input", inputs, "--output", tmp_path / "out", "-q"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and 'pip install -e ".[geo]"' in err and "x.tif and 1 other" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_mask.png"]


def test_cli_exported_model_takes_its_scale_rule_from_the_artefact(tmp_path, info_model, capsys):
    """A SavedModel exported by fcn-export carries the run's ModelInfo: the scene's scale follows it."""
    from fcn.inference.export import export_model
    from fcn.model.checkpoints import load_model

    artefact = tmp_path / "model_savedmodel"
    export_model(
        load_model(info_model), artefact, "saved_model", model_info=ModelInfo(train_scale=0.5, tile_gsd=1.2).to_dict()
    )
    source = rgb_tif(tmp_path / "s.tif", landscape(60, 72, seed=14), pixel=0.9)
    outputs = {}
    for name, model in (("keras", info_model), ("saved", artefact)):
        code, out, err = run(["--model", model, "--input", source, "--output", tmp_path / name, "-q"], capsys)
        assert code == 0, err
        assert "predicting at scale 0.375 (pixel size 0.9 m from the CRS, model trained at 2.4 m/px)" in out
        outputs[name] = read_tif(tmp_path / name / "s_mask.tif")[0]
    assert np.mean(outputs["keras"] == outputs["saved"]) > 0.999
