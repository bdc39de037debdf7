"""The fcn-predict command on GeoTIFF scenes: a georeferenced class map, areas, the scale from the pixel
size, one-line errors. The model: a 3x3 conv + softmax saved as a tiny .keras file trained "at 2.4 m/px"."""

import csv
import json
import sys

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
keras = pytest.importorskip("keras")

from PIL import Image  # noqa: E402
from rasterio.crs import CRS  # noqa: E402

from fcn.cli.common import run_cli  # noqa: E402
from fcn.cli.predict import main  # noqa: E402
from fcn.core.images import read_mask  # noqa: E402
from fcn.core.palette import NUM_CLASSES, PALETTE  # noqa: E402
from fcn.inference import geo  # noqa: E402
from fcn.model.checkpoints import ModelInfo, save_checkpoint  # noqa: E402
from helpers import conv_softmax_model, landscape, read_tif, rgb_tif  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


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
