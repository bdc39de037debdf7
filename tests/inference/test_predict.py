"""The fcn-predict command (fcn.cli.predict over fcn.inference.folder and prediction): naming, folder jobs, overlays, errors."""

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from fcn.cli.common import run_cli  # noqa: E402
from fcn.cli.predict import main  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.core.images import read_mask, tile_id  # noqa: E402
from fcn.core.palette import PALETTE  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.inference.folder import _overlay_name, list_input_images, mask_name, plan_jobs  # noqa: E402
from fcn.model.checkpoints import ModelInfo, load_model, save_checkpoint  # noqa: E402
from helpers import conv_softmax_model, random_image  # noqa: E402

# ---------------------------------------------------------------- names and folders


@pytest.mark.parametrize(
    "name, tile, mask",
    [
        ("0001_sat.jpg", "0001", "0001_mask.png"),
        ("foo.jpg", "foo", "foo_mask.png"),
        ("foo.png", "foo", "foo_mask.png"),
        ("a_sat.jpeg", "a", "a_mask.png"),
    ],
)
def test_naming_rules(name, tile, mask):
    assert tile_id(name) == tile
    assert tile_id(mask) == tile
    assert mask_name(name) == mask
    assert _overlay_name(name) == f"{tile}_overlay.jpg"


def test_masks_are_not_inputs_and_output_names_must_be_unique(tmp_path):
    for name in ("0001_sat.jpg", "0001_mask.png", "b.png", "notes.txt"):
        (tmp_path / name).touch()
    assert [p.name for p in list_input_images(tmp_path)] == ["0001_sat.jpg", "b.png"]
    (tmp_path / "0001.png").touch()
    with pytest.raises(InputError, match="0001_mask.png"):
        plan_jobs(tmp_path, tmp_path / "out")


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "best.keras"
    conv_softmax_model(1).save(path)
    return path


def write_tiles(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, (height, width)) in enumerate(sizes.items()):
        Image.fromarray(random_image(height, width, seed=i)).save(folder / name)
    return folder


def run(argv, capsys):
    code = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_masks_and_reports_a_broken_file(tmp_path, saved_model, capsys):
    sizes = {"0001_sat.jpg": (64, 96), "foo.png": (50, 70), "bar.jpeg": (33, 65)}
    inputs = write_tiles(tmp_path / "in", sizes)
    Image.fromarray(PALETTE[np.zeros((8, 8), np.uint8)]).save(inputs / "0001_mask.png")  # skipped
    (inputs / "broken.jpg").write_bytes(b"not a jpeg at all")
    code, out, err = run(
        ["--model", saved_model.parent, "--input", inputs, "--output", tmp_path / "out", "--overlay", tmp_path / "ov"],
        capsys,
    )
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "broken.jpg" in error_lines[0]
    assert "3 masks" in out and "images/s" in out
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["0001_mask.png", "bar_mask.png", "foo_mask.png"]
    predictor = Predictor(load_model(saved_model))
    for name, (height, width) in sizes.items():
        mask_path = tmp_path / "out" / mask_name(name)
        with Image.open(mask_path) as mask:
            assert mask.size == (width, height)
            colours = np.unique(np.asarray(mask.convert("RGB")).reshape(-1, 3), axis=0)
        assert all(any((c == p).all() for p in PALETTE) for c in colours)
        # The mask is what the library predicts for that image.
        image = np.asarray(Image.open(tmp_path / "in" / name).convert("RGB"))
        expected = predictor.predict_classes(image)
        np.testing.assert_array_equal(read_mask(mask_path), expected)
        with Image.open(tmp_path / "ov" / _overlay_name(name)) as overlay:
            assert overlay.size == (width, height)


def test_cli_run_directory_falls_back_to_last(tmp_path, saved_model, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.keras").write_bytes(saved_model.read_bytes())
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    code, out, err = run(
        [
            "--model",
            run_dir,
            "--input",
            inputs,
            "--output",
            tmp_path / "out",
            "--progress",
            "none",
            "--tta",
            "--scale",
            "0.5",
            "--precision",
            "auto",
        ],
        capsys,
    )
    assert code == 0, err
    assert "last.keras" in err and "scale 0.5 (--scale)" in out
    image = np.asarray(Image.open(inputs / "a.png").convert("RGB"))
    expected = Predictor(load_model(run_dir / "last.keras", precision="auto"), tta=True, scale=0.5).predict_classes(
        image
    )
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "a_mask.png"), expected)


def test_cli_predicts_at_the_models_scale_or_the_inputs_gsd(tmp_path, capsys):
    model = conv_softmax_model(3, seed=4)  # 3x3: the result depends on the scale
    path = tmp_path / "model.keras"
    save_checkpoint(model, path, {}, ModelInfo(model="test", train_scale=0.5, tile_gsd=1.2))
    inputs = write_tiles(tmp_path / "in", {"a.png": (64, 80)})
    image = np.asarray(Image.open(inputs / "a.png").convert("RGB"))
    for flags, scale in (([], 0.5), (["--input-gsd", "0.6"], 0.25), (["--scale", "1"], 1.0)):
        output = tmp_path / f"out{scale}"
        code, out, err = run(["--model", path, "--input", inputs, "--output", output, "-q", *flags], capsys)
        assert code == 0, err
        assert f"predicting at scale {scale:g} " in out
        expected = Predictor(load_model(path), scale=scale).predict_classes(image)
        np.testing.assert_array_equal(read_mask(output / "a_mask.png"), expected)
    assert not np.array_equal(
        read_mask(tmp_path / "out0.5" / "a_mask.png"), read_mask(tmp_path / "out1.0" / "a_mask.png")
    )
    code, _, err = run(
        ["--model", path, "--input", inputs, "--output", tmp_path / "x", "--scale", "1", "--input-gsd", "1"], capsys
    )
    assert code == 2 and "not allowed with" in err


def test_cli_input_gsd_with_a_model_that_does_not_know_its_gsd(tmp_path, saved_model, capsys):
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    code, _, err = run(
        ["--model", saved_model, "--input", inputs, "--output", tmp_path / "out", "--input-gsd", "0.5"], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(saved_model) in err and "ground sample distance" in err


@pytest.mark.parametrize(
    "problem",
    ["missing model", "empty input", "missing input", "output is input", "output links to input", "output is a file"],
)
def test_cli_refuses_before_any_work(tmp_path, saved_model, capsys, problem):
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    model, output = saved_model, tmp_path / "out"
    if problem == "missing model":
        model = tmp_path / "nope.keras"
    elif problem == "empty input":
        inputs = tmp_path / "empty"
        inputs.mkdir()
    elif problem == "missing input":
        inputs = tmp_path / "nowhere"
    elif problem == "output is input":
        output = inputs
    elif problem == "output links to input":
        output.symlink_to(inputs, target_is_directory=True)
    elif problem == "output is a file":
        output = tmp_path / "file"
        output.write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(["--model", model, "--input", inputs, "--output", output, "-q"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_cli_refuses_an_output_path_that_is_an_input(tmp_path, saved_model, capsys):
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40), "b.png": (40, 40)})
    output = tmp_path / "out"
    output.mkdir()
    (output / "a_mask.png").symlink_to(inputs / "b.png")
    before = (inputs / "b.png").read_bytes()
    code, _, err = run(["--model", saved_model, "--input", inputs, "--output", output, "-q"], capsys)
    assert code == 2 and "overwrite an input" in err
    assert (inputs / "b.png").read_bytes() == before


def test_cli_refuses_a_model_with_another_class_count(tmp_path, capsys):
    path = tmp_path / "five.keras"
    conv_softmax_model(1, num_classes=5).save(path)
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    code, _, err = run(["--model", path, "--input", inputs, "--output", tmp_path / "out"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "5 classes" in err and "7" in err
    assert not (tmp_path / "out" / "a_mask.png").exists()


def test_cli_reads_16_bit_pngs_scaled_not_saturated(tmp_path, saved_model, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    grey16 = (np.arange(40 * 40, dtype=np.uint32).reshape(40, 40) * 40).astype(np.uint16)
    Image.fromarray(grey16).save(inputs / "deep.png")
    code, _, err = run(["--model", saved_model, "--input", inputs, "--output", tmp_path / "out", "-q"], capsys)
    assert code == 0, err
    as_8_bit = np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    expected = Predictor(load_model(saved_model)).predict_classes(as_8_bit)
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "deep_mask.png"), expected)


def test_cli_predicts_one_file_and_tabulates_its_classes(tmp_path, capsys):
    path = tmp_path / "model.keras"
    save_checkpoint(conv_softmax_model(3, seed=4), path, {}, ModelInfo(model="test", train_scale=0.5, tile_gsd=1.2))
    inputs = write_tiles(tmp_path / "in", {"a.png": (48, 40), "b.png": (40, 40)})
    code, out, err = run(
        [
            "--model",
            path,
            "--input",
            inputs / "a.png",
            "--output",
            tmp_path / "out",
            "--input-gsd",
            "0.3",
            "--stats",
            tmp_path / "tables" / "stats.csv",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_mask.png"]  # b.png was not asked for
    mask = read_mask(tmp_path / "out" / "a_mask.png")
    lines = (tmp_path / "tables" / "stats.csv").read_text().splitlines()
    assert lines[0] == "input,class_index,name,pixels,fraction,area_m2,area_ha" and len(lines) == 1 + len(PALETTE)
    for line in lines[1:]:
        name, index, _, pixels, fraction, area_m2, _ = line.split(",")
        count = int((mask == int(index)).sum())
        assert name == "a.png" and int(pixels) == count
        assert float(fraction) == pytest.approx(count / (48 * 40), abs=1e-6) and float(area_m2) == pytest.approx(
            count * 0.09, abs=0.01
        )
    (inputs / "notes.txt").write_text("x")
    code, _, err = run(["--model", path, "--input", inputs / "notes.txt", "--output", tmp_path / "out2"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "notes.txt" in err and not (tmp_path / "out2").exists()
