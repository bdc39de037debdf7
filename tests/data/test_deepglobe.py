"""Tests of fcn.data.deepglobe, fcn.data.deepglobe_dataset and fcn-prepare-deepglobe on tiny synthetic DeepGlobe folders made in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn.cli.common import run_cli
from fcn.cli.prepare_deepglobe import main
from fcn.core.images import read_rgb
from fcn.core.palette import PALETTE, UNKNOWN, class_to_rgb, rgb_to_class
from fcn.data.deepglobe import TileParameters, cell_boxes, split_sources, tile_stem
from fcn.data.deepglobe_dataset import _tiling_memory, convert_dataset

QUADRANT_COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], dtype=np.uint8)


def write_pair(folder: Path, source_id: str, image: np.ndarray, mask_rgb: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{source_id}_sat.jpg", quality=95)
    Image.fromarray(mask_rgb).save(folder / f"{source_id}_mask.png")


def synthetic_pair(side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose quadrants have distinct colours (plus texture) and a mask of random classes per pixel."""
    rng = np.random.default_rng(seed)
    half = side // 2
    quadrant = (np.arange(side)[:, None] >= half) * 2 + (np.arange(side)[None, :] >= half)
    texture = rng.integers(-20, 21, size=(side, side, 1))
    image = np.clip(QUADRANT_COLOURS[quadrant].astype(int) + texture, 0, 255).astype(np.uint8)
    return image, class_to_rgb(rng.integers(0, 7, size=(side, side)))


def make_folder(folder: Path, ids, side: int = 64) -> Path:
    for k, source_id in enumerate(ids):
        write_pair(folder, source_id, *synthetic_pair(side, seed=k))
    return folder


def run(argv) -> int:
    return run_cli(main, [str(a) for a in argv])


def error_lines(captured) -> list[str]:
    return [line for line in captured.err.splitlines() if line.startswith("error:")]


def tiles(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*_*_*")) if folder.is_dir() else []


def ids_in(folder: Path) -> set[str]:
    return {name.split("_")[0] for name in tiles(folder)}


# --- geometry -----------------------------------------------------------------------------------


def test_cell_boxes_of_a_deepglobe_image_are_its_quadrants():
    assert cell_boxes(2448, 2448, 2) == [
        (0, 0, (0, 0, 1224, 1224)),
        (0, 1, (1224, 0, 2448, 1224)),
        (1, 0, (0, 1224, 1224, 2448)),
        (1, 1, (1224, 1224, 2448, 2448)),
    ]
    assert cell_boxes(2448, 2448, 1) == [(0, 0, (0, 0, 2448, 2448))]


def test_cell_boxes_drop_the_remainder_when_not_divisible():
    boxes = cell_boxes(50, 61, 3)  # cells 16 high, 20 wide; 2 rows and 1 column of pixels dropped
    assert len(boxes) == 9
    assert boxes[0] == (0, 0, (0, 0, 20, 16))
    assert boxes[-1] == (2, 2, (40, 32, 60, 48))
    with pytest.raises(ValueError):
        cell_boxes(2, 2, 3)


def test_tile_stem_is_id_row_col():
    assert tile_stem("10901", 1, 0, 2) == "10901_10"
    assert tile_stem("7", 0, 0, 1) == "7_00"
    assert tile_stem("7", 3, 11, 12) == "7_0311"  # two digits per index once grid > 10


def test_each_cell_is_the_downscale_of_its_crop(tmp_path):
    source = make_folder(tmp_path / "dg", ["5"])
    # 32 -> 20 px: a non-integer factor, so an interpolated mask would differ from the nearest one
    assert run(["--input", source, "--output", tmp_path / "out", "--size", 20, "--val-fraction", 0]) == 0
    image = Image.fromarray(read_rgb(source / "5_sat.jpg"))
    mask = Image.fromarray(read_rgb(source / "5_mask.png"))
    for row, col, box in cell_boxes(64, 64, 2):
        stem = tmp_path / "out" / "train" / tile_stem("5", row, col, 2)
        expected_mask = np.asarray(mask.crop(box).resize((20, 20), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(read_rgb(f"{stem}_mask.png"), expected_mask)
        written = read_rgb(f"{stem}_sat.jpg").astype(int)
        assert written.shape == (20, 20, 3)
        expected_image = np.asarray(image.crop(box).resize((20, 20), Image.Resampling.BILINEAR)).astype(int)
        assert np.abs(written - expected_image).mean() < 3  # JPEG noise only
        distances = [np.abs(written.mean((0, 1)) - c).sum() for c in QUADRANT_COLOURS.astype(int)]
        assert np.argmin(distances) == row * 2 + col  # the colour of quadrant (row, col)


def test_grid_one_and_other_sizes(tmp_path):
    source = make_folder(tmp_path / "dg", ["1", "2"])
    code = run(["--input", source, "--output", tmp_path / "out", "--grid", 1, "--size", 40, "--val-fraction", 0.5])
    assert code == 0
    written = tiles(tmp_path / "out" / "train") + tiles(tmp_path / "out" / "validation")
    assert sorted(written) == ["1_00_mask.png", "1_00_sat.jpg", "2_00_mask.png", "2_00_sat.jpg"]
    for path in (tmp_path / "out").glob("*/*_00_*"):
        assert Image.open(path).size == (40, 40)


def test_upscaling_is_warned_about_once(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1", "2"])
    assert run(["--input", source, "--output", tmp_path / "up", "--size", 40, "--val-fraction", 0]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "2 source images" in warnings[0]
    assert run(["--input", source, "--output", tmp_path / "down", "--size", 32, "--val-fraction", 0]) == 0
    assert "warning:" not in capsys.readouterr().err


def test_non_divisible_grid_writes_grid_squared_cells(tmp_path):
    source = tmp_path / "dg"
    write_pair(source, "9", *synthetic_pair(64, seed=0))
    assert run(["--input", source, "--output", tmp_path / "out", "--grid", 3, "--size", 8, "--val-fraction", 0]) == 0
    assert len(tiles(tmp_path / "out" / "train")) == 2 * 9


# --- palette ------------------------------------------------------------------------------------


def test_mask_colours_are_snapped_with_the_course_rule(tmp_path):
    rng = np.random.default_rng(3)
    classes = np.kron(rng.integers(0, 7, size=(8, 8)), np.ones((8, 8), dtype=int))
    noisy = np.clip(PALETTE[classes].astype(int) + rng.integers(-60, 61, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    noisy[:16, :16] = (220, 30, 40)  # red is not a class: Unknown
    source = tmp_path / "dg"
    write_pair(source, "3", synthetic_pair(64, 0)[0], noisy)
    out = tmp_path / "out"
    assert run(["--input", source, "--output", out, "--size", 32, "--val-fraction", 0]) == 0  # 32 = cell: no resize
    top_left = read_rgb(out / "train" / "3_00_mask.png")
    np.testing.assert_array_equal(rgb_to_class(top_left), rgb_to_class(noisy[:32, :32]))
    assert (rgb_to_class(top_left[:16, :16]) == UNKNOWN).all()
    np.testing.assert_array_equal(top_left[:16, :16], 0)


def test_masks_only_contain_palette_colours(tmp_path):
    rng = np.random.default_rng(4)
    noisy = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)  # anything at all
    source = tmp_path / "dg"
    write_pair(source, "4", synthetic_pair(64, 0)[0], noisy)
    assert run(["--input", source, "--output", tmp_path / "out", "--size", 20, "--val-fraction", 0]) == 0
    palette = {tuple(c) for c in PALETTE.tolist()}
    for path in (tmp_path / "out" / "train").glob("*_mask.png"):
        colours = {tuple(c) for c in np.unique(read_rgb(path).reshape(-1, 3), axis=0).tolist()}
        assert colours <= palette, path


def test_jpeg_quality_of_the_tiles(tmp_path):
    source = make_folder(tmp_path / "dg", ["1"])

    def quantization(quality: int, output: Path) -> dict:
        assert (
            run(["--input", source, "--output", output, "--size", 16, "--val-fraction", 0, "--jpeg-quality", quality])
            == 0
        )
        return Image.open(output / "train" / "1_00_sat.jpg").quantization

    def reference(quality: int) -> dict:
        path = tmp_path / f"ref{quality}.jpg"
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, quality=quality)
        return Image.open(path).quantization

    assert quantization(95, tmp_path / "q95") == reference(95)
    assert quantization(75, tmp_path / "q75") == reference(75)
    assert TileParameters().jpeg_quality == 95


# --- split --------------------------------------------------------------------------------------


def test_split_is_by_source_respects_the_fraction_and_is_deterministic(tmp_path):
    ids = [str(100 + k) for k in range(20)]
    source = make_folder(tmp_path / "dg", ids, side=8)
    args = ["--input", source, "--size", 4, "--val-fraction", 0.25, "--seed", 7, "--workers", 2]
    assert run([*args, "--output", tmp_path / "a"]) == 0
    assert run([*args, "--output", tmp_path / "b"]) == 0
    train, validation = ids_in(tmp_path / "a" / "train"), ids_in(tmp_path / "a" / "validation")
    assert not train & validation
    assert train | validation == set(ids)
    assert len(validation) == 5
    for split in ("train", "validation"):  # all 4 cells of a source on its side
        names = tiles(tmp_path / "a" / split)
        assert len(names) == 8 * len(ids_in(tmp_path / "a" / split))
        assert names == tiles(tmp_path / "b" / split)
    manifest = json.loads((tmp_path / "a" / "split.json").read_text())
    assert set(manifest["splits"]["validation"]) == validation
    assert manifest["parameters"]["seed"] == 7 and manifest["parameters"]["val_fraction"] == 0.25


def test_split_sources_rules():
    ids = [f"{k}" for k in range(10)]
    assert len(split_sources(ids, 0.01, 0)["validation"]) == 1  # at least one
    assert split_sources(ids, 0.0, 0)["validation"] == []
    assert split_sources(["1"], 0.5, 0) == {"train": ["1"], "validation": []}
    assert split_sources(["1", "2"], 0.9, 0)["train"] != []  # training is never emptied
    assert split_sources(ids, 0.3, 5) == split_sources(list(reversed(ids)), 0.3, 5)
    assert len({tuple(split_sources(ids, 0.3, seed)["validation"]) for seed in range(6)}) > 1
    with pytest.raises(ValueError):
        split_sources(ids, 1.0, 0)


# --- resuming -----------------------------------------------------------------------------------


OLD_MTIME_NS = 1_000_000_000 * 10**9  # 2001: a file still this old was not rewritten


def age_tiles(folder: Path) -> None:
    for path in folder.rglob("*_*_*"):
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))


def rewritten(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*_*_*") if p.stat().st_mtime_ns != OLD_MTIME_NS}


def test_second_run_skips_and_overwrite_rewrites(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1", "2"])
    out = tmp_path / "out"
    args = ["--input", source, "--output", out, "--size", 16, "--val-fraction", 0]
    assert run(args) == 0
    all_tiles = tiles(out / "train")
    assert len(all_tiles) == 16
    age_tiles(out)
    capsys.readouterr()

    assert run(args) == 0
    assert rewritten(out) == set()
    assert "0 tiles written, 8 already done" in capsys.readouterr().out

    (out / "train" / "2_11_mask.png").unlink()
    (out / "train" / ".1_01_sat.jpg.tmp-abc123.jpg").write_bytes(b"half")  # left by a killed write
    assert run(args) == 0
    assert "1 tiles written, 7 already done" in capsys.readouterr().out
    assert rewritten(out) == {"2_11_mask.png", "2_11_sat.jpg"}
    assert not (out / "train" / ".1_01_sat.jpg.tmp-abc123.jpg").exists()

    age_tiles(out)
    assert run([*args, "--overwrite"]) == 0
    assert tiles(out / "train") == all_tiles
    assert rewritten(out) == set(all_tiles)


def test_other_parameters_need_overwrite(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1", "2", "3"])
    out = tmp_path / "out"
    assert run(["--input", source, "--output", out, "--size", 16]) == 0
    capsys.readouterr()
    assert run(["--input", source, "--output", out, "--size", 16, "--grid", 1]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "split.json" in lines[0]

    assert run(["--input", source, "--output", out, "--size", 16, "--grid", 1, "--overwrite"]) == 0
    names = tiles(out / "train") + tiles(out / "validation")
    assert len(names) == 6 and all("_00_" in n for n in names)  # no stale cells of the 2x2 grid left


# --- bad inputs ---------------------------------------------------------------------------------


def test_corrupt_inputs_are_reported_and_the_others_written(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1", "2", "3"])
    (source / "2_sat.jpg").write_bytes(b"not a jpeg at all")
    good_mask = (source / "3_mask.png").read_bytes()
    (source / "3_mask.png").write_bytes(good_mask[: len(good_mask) // 2])  # truncated PNG
    out = tmp_path / "out"
    assert run(["--input", source, "--output", out, "--size", 16, "--val-fraction", 0]) == 2
    errors = error_lines(capsys.readouterr())
    assert len(errors) == 2
    assert any("2_sat.jpg" in line for line in errors) and any("3_mask.png" in line for line in errors)
    assert ids_in(out / "train") == {"1"}
    assert len(tiles(out / "train")) == 8
    assert set(json.loads((out / "split.json").read_text())["failed"]) == {"2", "3"}


def test_mask_of_another_size_is_skipped(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1", "2"])
    Image.fromarray(synthetic_pair(32, 0)[1]).save(source / "2_mask.png")
    out = tmp_path / "out"
    assert run(["--input", source, "--output", out, "--size", 16, "--val-fraction", 0]) == 2
    errors = error_lines(capsys.readouterr())
    assert len(errors) == 1 and "2_mask.png" in errors[0] and "32x32" in errors[0]
    assert ids_in(out / "train") == {"1"}


@pytest.mark.parametrize("problem", ["missing", "empty", "no_mask"])
def test_unusable_input_folder_is_one_line_and_exit_2(tmp_path, capsys, problem):
    source = tmp_path / "dg"
    if problem == "empty":
        source.mkdir()
        (source / "readme.txt").write_text("nothing here")
    elif problem == "no_mask":
        make_folder(source, ["1", "2"])
        (source / "2_mask.png").unlink()
    out = tmp_path / "out"
    assert run(["--input", source, "--output", out]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert ("2_sat.jpg" if problem == "no_mask" else str(source)) in lines[0]
    assert tiles(out / "train") == []


def test_bad_option_values_are_refused(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1"])
    for bad in (["--val-fraction", 1.0], ["--grid", 0], ["--size", -5], ["--jpeg-quality", 0]):
        assert run(["--input", source, "--output", tmp_path / "out", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[0] in err[0]
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_process_pool_writes_the_same_tiles(tmp_path):
    source = make_folder(tmp_path / "dg", ["1", "2"])
    params = TileParameters(size=16)
    convert_dataset(source, tmp_path / "threads", params, val_fraction=0, workers=2, executor="thread", progress=False)
    summary = convert_dataset(
        source, tmp_path / "procs", params, val_fraction=0, workers=2, executor="process", progress=False
    )
    assert summary.cells_written == 8 and not summary.failed
    for path in (tmp_path / "threads" / "train").glob("*_mask.png"):
        np.testing.assert_array_equal(read_rgb(path), read_rgb(tmp_path / "procs" / "train" / path.name))


def test_output_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    source = make_folder(tmp_path / "dg", ["1"])
    (tmp_path / "out").write_text("a file, not a folder")
    assert run(["--input", source, "--output", tmp_path / "out"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(tmp_path / "out") in lines[0]


def test_tiling_memory_counts_each_process():
    one = _tiling_memory(2448, 2448, 512, 4)
    assert _tiling_memory(2448, 2448, 512, 4, processes=3) == 3 * one
    assert _tiling_memory(2448, 2448, 200000, 1) > 100 * 2**30
