"""The fcn-mean-iou command (fcn.cli.mean_iou, fcn.core.evaluate, scripts/mean_iou.py) on tiny synthetic folders."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.course_tool import course_mean_iou_score
from fcn.cli.common import run_cli
from fcn.cli.mean_iou import main
from fcn.core.evaluate import _rgb_pair_counts
from fcn.core.images import write_mask
from fcn.core.metrics import pair_counts
from fcn.core.palette import PALETTE, rgb_to_class

REPO = Path(__file__).resolve().parents[2]
SIZE = 64


def course_text(gt_maps, pred_maps):
    """The course tool's printed text (bench/course_tool.py, pooled pixels, six passes)."""
    return course_mean_iou_score(list(pred_maps), list(gt_maps))[2]


def make_pair(rng, shape=(SIZE, SIZE)):
    coarse = rng.integers(0, 7, size=(shape[0] // 8, shape[1] // 8))
    gt = np.kron(coarse, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
    pred = np.where(rng.random(shape) < 0.3, rng.integers(0, 7, size=shape), gt).astype(np.uint8)
    return gt, pred


@pytest.fixture
def folders(tmp_path):
    """gt/ and pred/ with three 64x64 mask pairs 0001-0003; returns (gt_dir, pred_dir, {id: (gt, pred)})."""
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    maps = {}
    for tile in ("0001", "0002", "0003"):
        gt, pred = make_pair(rng)
        write_mask(gt_dir / f"{tile}_mask.png", gt)
        write_mask(pred_dir / f"{tile}_mask.png", pred)
        maps[tile] = (gt, pred)
    (gt_dir / "0001_sat.jpg").write_bytes(b"not a mask, ignored")
    return gt_dir, pred_dir, maps


def expected_text(maps, tiles=None):
    tiles = sorted(maps) if tiles is None else tiles
    return course_text([maps[t][0] for t in tiles], [maps[t][1] for t in tiles])


def run(argv, capsys):
    code = run_cli(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_exactly_the_course_lines(folders, capsys):
    gt_dir, pred_dir, maps = folders
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 0 and err == ""
    assert out == expected_text(maps)
    assert re.fullmatch(r"(class #\d : \d\.\d{5}\n){6}\nmean_iou: \d\.\d{6}\n\n", out)


@pytest.mark.parametrize("workers", ["1", "3"])
def test_long_options_and_worker_counts_give_the_same_output(folders, capsys, workers):
    gt_dir, pred_dir, maps = folders
    code, out, _ = run(["--labels", str(gt_dir), "--pred", str(pred_dir), "--workers", workers], capsys)
    assert code == 0 and out == expected_text(maps)


def test_files_are_paired_by_name_not_position(folders, capsys):
    gt_dir, pred_dir, maps = folders
    # Renamed predictions (xxxx.png) plus an extra one that sorts first and would shift a positional pairing.
    for tile in maps:
        (pred_dir / f"{tile}_mask.png").rename(pred_dir / f"{tile}.png")
    write_mask(pred_dir / "0000.png", np.zeros((SIZE, SIZE), np.uint8))
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 0 and out == expected_text(maps)
    assert err.splitlines() == ["warning: 1 prediction has no ground-truth mask (ignored): 0000.png"]


def test_json_holds_the_summary(folders, capsys, tmp_path):
    gt_dir, pred_dir, maps = folders
    json_path = tmp_path / "scores.json"
    code, out, _ = run(["-g", str(gt_dir), "-p", str(pred_dir), "--json", str(json_path)], capsys)
    assert code == 0
    summary = json.loads(json_path.read_text())
    gts = np.stack([maps[t][0] for t in sorted(maps)])
    preds = np.stack([maps[t][1] for t in sorted(maps)])
    assert summary["num_images"] == 3 and summary["num_pixels"] == gts.size
    assert summary["confusion_matrix"] == pair_counts(gts, preds).tolist()
    assert "mean_iou: %f\n" % summary["mean_iou"] in out
    assert "class #2 : %1.5f\n" % summary["iou"]["rangeland"] in out
    assert summary["missing"] == [] and summary["extra"] == []


def test_json_into_a_missing_folder_fails_before_the_work(folders, capsys, tmp_path):
    gt_dir, pred_dir, _ = folders
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir), "--json", str(tmp_path / "no" / "x.json")], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1


def test_json_replaces_its_own_summary_but_not_a_foreign_file(folders, capsys, tmp_path):
    gt_dir, pred_dir, _ = folders
    json_path = tmp_path / "scores.json"
    args = ["-g", str(gt_dir), "-p", str(pred_dir), "--json", str(json_path)]
    assert run(args, capsys)[0] == 0
    assert run(args, capsys)[0] == 0  # a second run replaces its own summary
    foreign = '{"mine": 1}\n'
    json_path.write_text(foreign)
    code, out, err = run(args, capsys)
    assert code == 2 and out == "" and "--overwrite" in err and len(err.splitlines()) == 1
    assert json_path.read_text() == foreign
    assert run([*args, "--overwrite"], capsys)[0] == 0
    assert json.loads(json_path.read_text())["num_images"] == 3


def test_confusion_prints_the_matrix_after_the_course_lines(folders, capsys):
    gt_dir, pred_dir, maps = folders
    code, out, _ = run(["-g", str(gt_dir), "-p", str(pred_dir), "--confusion"], capsys)
    assert code == 0 and out.startswith(expected_text(maps))
    table = out[len(expected_text(maps)) :].splitlines()
    assert len(table) == 9 and "agriculture" in table[0] and table[7].startswith("unknown")
    assert table[8].startswith("precision")
    gts = np.stack([maps[t][0] for t in sorted(maps)])
    preds = np.stack([maps[t][1] for t in sorted(maps)])
    urban = pair_counts(gts, preds)[0]
    assert [int(v) for v in table[1].split()[1:8]] == urban.tolist()
    assert float(table[1].split()[8]) == pytest.approx(urban[0] / urban.sum(), abs=5e-4)  # urban's recall


def test_missing_predictions_are_an_error_unless_allowed(folders, capsys):
    gt_dir, pred_dir, maps = folders
    (pred_dir / "0002_mask.png").unlink()
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "1 ground-truth mask has no prediction: 0002_mask.png" in err

    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir), "--allow-missing"], capsys)
    assert code == 0 and out == expected_text(maps, ["0001", "0003"])
    assert err.splitlines() == ["warning: 1 ground-truth mask has no prediction: 0002_mask.png"]


def test_size_mismatch_is_one_line_naming_the_file(folders, capsys):
    gt_dir, pred_dir, _ = folders
    write_mask(pred_dir / "0003_mask.png", np.zeros((SIZE, SIZE // 2), np.uint8))
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "0003_mask.png" in err and "32x64" in err


def test_any_image_size_is_accepted(tmp_path, capsys):
    rng = np.random.default_rng(1)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    maps = {}
    for tile, shape in (("a", (16, 40)), ("b", (72, 24))):
        maps[tile] = make_pair(rng, shape)
        write_mask(gt_dir / f"{tile}_mask.png", maps[tile][0])
        write_mask(pred_dir / f"{tile}_mask.png", maps[tile][1])
    code, out, _ = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 0 and out == expected_text(maps)


def test_corrupt_png_is_one_line_naming_it(folders, capsys):
    gt_dir, pred_dir, _ = folders
    (pred_dir / "0002_mask.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "0002_mask.png" in err


@pytest.mark.parametrize("which", ["-g", "-p"])
def test_nonexistent_folder_is_exit_2(folders, capsys, tmp_path, which):
    gt_dir, pred_dir, _ = folders
    argv = {"-g": str(gt_dir), "-p": str(pred_dir)}
    argv[which] = str(tmp_path / "nowhere")
    code, out, err = run([item for pair in argv.items() for item in pair], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "nowhere" in err


def test_absent_class_prints_nan_and_warns_once(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    classes = np.array([[0, 1, 2, 3, 5, 6]] * 4, np.uint8)  # no water anywhere
    write_mask(gt_dir / "x_mask.png", classes)
    write_mask(pred_dir / "x_mask.png", classes)
    code, out, err = run(["-g", str(gt_dir), "-p", str(pred_dir)], capsys)
    assert code == 0 and "class #4 : nan\n" in out and out.endswith("mean_iou: 1.000000\n\n")
    assert len(err.splitlines()) == 1 and "water" in err


def test_fused_rgb_counts_equal_decoding_then_counting():
    rng = np.random.default_rng(2)
    gt_rgb = rng.integers(0, 256, size=(33, 47, 3), dtype=np.uint8)
    pred_rgb = rng.integers(0, 256, size=(33, 47, 3), dtype=np.uint8)
    gt_rgb[:3] = (255, 0, 0)  # red: Unknown
    pred_rgb[-3:] = PALETTE[2]
    expected = pair_counts(rgb_to_class(gt_rgb), rgb_to_class(pred_rgb))
    np.testing.assert_array_equal(_rgb_pair_counts(gt_rgb, pred_rgb), expected)


@pytest.mark.slow
def test_script_runs_in_a_subprocess(folders):
    gt_dir, pred_dir, maps = folders
    script = str(REPO / "scripts" / "mean_iou.py")
    ok = subprocess.run(
        [sys.executable, script, "-g", str(gt_dir), "-p", str(pred_dir)], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0 and ok.stdout == expected_text(maps) and ok.stderr == ""

    (gt_dir / "0001_mask.png").write_bytes(b"garbage")
    bad = subprocess.run(
        [sys.executable, script, "-g", str(gt_dir), "-p", str(pred_dir)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.splitlines()) == 1 and "0001_mask.png" in bad.stderr
