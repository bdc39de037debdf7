"""Issue 20: nothing lost, nothing half-written. One table per command over the issue's cases.

Each case builds a tiny folder, runs the command in this process (``run_cli``: the exit code and the
stderr lines the user sees) and checks what is on disk afterwards. A full disk is simulated by making
the checked writer's one low-level write (``fcn.core.files._write_chunk``) fail with ENOSPC after a
few bytes; permission cases are skipped as root. A kill -9 mid-write: tests/cli/test_kill_then_rerun.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn.cli import export, mean_iou, predict, prepare_deepglobe
from fcn.cli.common import run_cli
from fcn.core import files, memory
from fcn.core.files import TEMP_MARK
from fcn.core.mark import carries_mark
from fcn.core.palette import PALETTE

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {
    "predict": predict.main,
    "export": export.main,
    "mean_iou": mean_iou.main,
    "prepare": prepare_deepglobe.main,
}


def tile(path: Path, seed: int = 0, side: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, "JPEG", quality=90)
    return path


def ground_truth(path: Path, seed: int = 0, side: int = 32) -> Path:
    """A palette mask written by Pillow, as a real ground truth is: without fcn's mark."""
    path.parent.mkdir(parents=True, exist_ok=True)
    classes = np.random.default_rng(seed).integers(0, 7, (side, side))
    Image.fromarray(PALETTE[classes].astype(np.uint8)).save(path)
    return path


def run(command: str, argv, capsys) -> tuple[int, list[str]]:
    """Exit code and the stderr lines of one command run in this process."""
    capsys.readouterr()
    code = run_cli(COMMANDS[command], [str(a) for a in argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def disk_full_after(monkeypatch, limit: int) -> None:
    written = 0

    def write_chunk(fd, data):
        nonlocal written
        if written >= limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = os.write(fd, data[: limit - written])
        written += count
        return count

    monkeypatch.setattr(files, "_write_chunk", write_chunk)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def whole_images(folder: Path) -> bool:
    for path in folder.glob("*.*"):
        with Image.open(path) as img:
            img.load()
    return True


# ---------------------------------------------------------------- predict


def case_single_file_beside_its_ground_truth(d, model):
    tile(d / "g" / "0030_sat.jpg")
    truth = ground_truth(d / "g" / "0030_mask.png").read_bytes()

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "0030_mask.png" in lines[0] and "--overwrite" in lines[0]
        assert (d / "g" / "0030_mask.png").read_bytes() == truth

    return ["--model", model, "--input", d / "g" / "0030_sat.jpg", "--output", d / "g", "-q"], check


def case_output_is_a_ground_truth_folder(d, model):
    tile(d / "in" / "0001_sat.jpg")
    truth = ground_truth(d / "gt" / "0001_mask.png").read_bytes()

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "not written by fcn" in lines[0]
        assert (d / "gt" / "0001_mask.png").read_bytes() == truth

    return ["--model", model, "--input", d / "in", "--output", d / "gt", "-q"], check


def case_overwrite_replaces_it(d, model):
    tile(d / "in" / "0001_sat.jpg")
    ground_truth(d / "gt" / "0001_mask.png")

    def check(code, lines):
        assert code == 0 and lines == [] and carries_mark(d / "gt" / "0001_mask.png")

    return ["--model", model, "--input", d / "in", "--output", d / "gt", "-q", "--overwrite"], check


def case_dangling_link_and_loop(d, model):
    tile(d / "in" / "0001_sat.jpg")
    (d / "in" / "0002_sat.jpg").symlink_to(d / "gone.jpg")
    (d / "in" / "0003_sat.jpg").symlink_to(d / "in" / "0003_sat.jpg")

    def check(code, lines):
        assert code == 2 and len(lines) == 2
        assert "0002_sat.jpg" in lines[0] and "does not exist" in lines[0] and "0003_sat.jpg" in lines[1]
        assert sorted(p.name for p in (d / "out").iterdir()) == ["0001_mask.png"]

    return ["--model", model, "--input", d / "in", "--output", d / "out", "-q"], check


def case_image_over_pillows_limit(d, model):
    tile(d / "in" / "0001_sat.jpg")
    tile(d / "in" / "0002_sat.jpg", side=64)  # over the limit the table's monkeypatch sets

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "0002_sat.jpg" in lines[0] and "pixels" in lines[0]
        assert sorted(p.name for p in (d / "out").iterdir()) == ["0001_mask.png"]

    return ["--model", model, "--input", d / "in", "--output", d / "out", "-q"], check


def case_scale_too_large_for_memory(d, model):
    tile(d / "in" / "0001_sat.jpg")

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "of memory" in lines[0] and "0001_sat.jpg" in lines[0]

    return ["--model", model, "--input", d / "in", "--output", d / "out", "-q", "--scale", "100"], check


def case_disk_full_with_overlays(d, model):
    for k in range(4):
        tile(d / "in" / f"000{k}_sat.jpg", k)

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "No space left" in lines[0]
        assert whole_images(d / "out") and whole_images(d / "ov") and hidden(d / "out") == hidden(d / "ov") == []

    return ["--model", model, "--input", d / "in", "--output", d / "out", "--overlay", d / "ov", "-q"], check


def case_not_a_keras_file(d, model):
    tile(d / "in" / "0001_sat.jpg")
    tile(d / "fake.keras")

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "not a valid .keras model" in lines[0]
        assert not (d / "new").exists()  # the output folder it created is gone again

    return ["--model", d / "fake.keras", "--input", d / "in", "--output", d / "new" / "out", "-q"], check


def case_temp_files_of_a_killed_run(d, model):
    tile(d / "in" / "0001_sat.jpg")
    (d / "out").mkdir()
    (d / "out" / f".0001_mask.png{TEMP_MARK}x1y2.png").write_bytes(b"half")
    (d / "out" / f".other.png{TEMP_MARK}x1y2.png").write_bytes(b"not ours")

    def check(code, lines):
        assert code == 0 and hidden(d / "out") == [f".other.png{TEMP_MARK}x1y2.png"]

    return ["--model", model, "--input", d / "in", "--output", d / "out", "-q"], check


PREDICT_CASES = {
    "single file into its own folder": (case_single_file_beside_its_ground_truth, None),
    "--output a ground-truth folder": (case_output_is_a_ground_truth_folder, None),
    "--overwrite replaces it": (case_overwrite_replaces_it, None),
    "dangling link and link loop": (case_dangling_link_and_loop, None),
    "image over Pillow's pixel limit": (case_image_over_pillows_limit, "pixel_limit"),
    "--scale 100": (case_scale_too_large_for_memory, "memory"),
    "disk full, with --overlay": (case_disk_full_with_overlays, "disk_full"),
    "a JPEG renamed .keras": (case_not_a_keras_file, None),
    "temp files of a killed run": (case_temp_files_of_a_killed_run, None),
}


def _setup(kind, monkeypatch):
    if kind == "pixel_limit":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    elif kind == "memory":
        monkeypatch.setattr(memory, "_available_memory", lambda: 512 * 2**20)  # 32 px at scale 100 needs more
    elif kind == "disk_full":
        disk_full_after(monkeypatch, 3000)


@pytest.mark.parametrize("name", list(PREDICT_CASES))
def test_predict(name, model, tmp_path, monkeypatch, capsys):
    make, kind = PREDICT_CASES[name]
    argv, check = make(tmp_path, model)
    _setup(kind, monkeypatch)
    check(*run("predict", argv, capsys))


# ---------------------------------------------------------------- export (refusals come before any conversion)


def case_export_onto_the_checkpoint(d, model):
    before = model.read_bytes()

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "overwrite the model" in lines[0]
        assert model.read_bytes() == before

    return ["--model", model.parent, "--format", "onnx", "--output", model, "--no-check"], check


def case_export_onto_notes(d, model):
    (d / "notes.txt").write_text("mine\n")

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "not written by fcn" in lines[0]
        assert (d / "notes.txt").read_text() == "mine\n"

    return ["--model", model, "--format", "onnx", "--output", d / "notes.txt", "--no-check"], check


def case_export_truncated_keras(d, model):
    (d / "cut.keras").write_bytes(model.read_bytes()[:3000])

    def check(code, lines):
        assert code == 2 and len(lines) == 1 and "not a valid .keras model" in lines[0]
        assert not (d / "new").exists()

    return ["--model", d / "cut.keras", "--format", "onnx", "--output", d / "new" / "m.onnx"], check


EXPORT_CASES = {
    "--output RUN/best.keras": case_export_onto_the_checkpoint,
    "--output notes.txt": case_export_onto_notes,
    "a truncated .keras": case_export_truncated_keras,
}


@pytest.mark.parametrize("name", list(EXPORT_CASES))
def test_export_refusals(name, model, tmp_path, capsys):
    argv, check = EXPORT_CASES[name](tmp_path, model)
    check(*run("export", argv, capsys))


@pytest.mark.slow
def test_export_onto_a_full_disk_is_one_line_and_leaves_nothing(model, tmp_path, monkeypatch, capsys):
    pytest.importorskip("tf2onnx")
    disk_full_after(monkeypatch, 100)
    code, lines = run("export", ["--model", model, "--format", "onnx", "--output", tmp_path / "m.onnx"], capsys)
    assert code == 2 and len(lines) == 1 and "m.onnx: cannot write (No space left" in lines[0]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- mean_iou


def test_mean_iou_same_folder_twice_is_refused(tmp_path, capsys):
    ground_truth(tmp_path / "D" / "0001_mask.png")
    code, lines = run("mean_iou", ["-g", tmp_path / "D", "-p", tmp_path / "D" / "."], capsys)
    assert code == 2 and len(lines) == 1 and "-g and -p are the same folder" in lines[0]


def test_mean_iou_names_unreadable_masks_scores_the_rest_and_ignores_temp_files(tmp_path, capsys):
    for k in range(2):
        ground_truth(tmp_path / "g" / f"000{k}_mask.png", k)
        ground_truth(tmp_path / "p" / f"000{k}_mask.png", k)
    ground_truth(tmp_path / "g" / "0002_mask.png", 2)
    (tmp_path / "p" / "0002_mask.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "p" / f".0001_mask.png{TEMP_MARK}ab12.png").write_bytes(b"half")
    capsys.readouterr()
    code = run_cli(mean_iou.main, ["-g", str(tmp_path / "g"), "-p", str(tmp_path / "p"), "--allow-missing"])
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert code == 2 and "mean_iou: 1.000000" in out.out
    assert [line for line in lines if line.startswith("error:")][0].count("0002_mask.png") == 1
    assert not any(TEMP_MARK in line for line in lines)


def test_mean_iou_mask_over_pillows_limit_is_one_line(tmp_path, monkeypatch, capsys):
    ground_truth(tmp_path / "g" / "0001_mask.png")
    ground_truth(tmp_path / "p" / "0001_mask.png", side=64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    code, lines = run("mean_iou", ["-g", tmp_path / "g", "-p", tmp_path / "p"], capsys)
    assert code == 2 and len(lines) == 1 and "0001_mask.png" in lines[0] and "pixels" in lines[0]


# ---------------------------------------------------------------- prepare_deepglobe


def sources(folder: Path, n: int = 2, side: int = 64) -> Path:
    for k in range(n):
        tile(folder / f"{k}_sat.jpg", k, side)
        ground_truth(folder / f"{k}_mask.png", k, side)
    return folder


def test_prepare_input_inside_output_is_refused(tmp_path, capsys):
    sources(tmp_path / "X" / "train")
    before = sorted(p.name for p in (tmp_path / "X" / "train").iterdir())
    code, lines = run("prepare", ["--input", tmp_path / "X" / "train", "--output", tmp_path / "X"], capsys)
    assert code == 2 and len(lines) == 1 and "choose folders apart" in lines[0]
    assert sorted(p.name for p in (tmp_path / "X" / "train").iterdir()) == before
    assert sorted(p.name for p in (tmp_path / "X").iterdir()) == ["train"]


def test_prepare_a_size_that_cannot_fit_in_memory_is_refused(tmp_path, capsys):
    sources(tmp_path / "src", 1)
    argv = ["--input", tmp_path / "src", "--output", tmp_path / "ds", "--size", "200000", "--grid", "1"]
    code, lines = run("prepare", argv, capsys)
    assert code == 2 and len(lines) == 1 and "of memory" in lines[0] and "--size 200000" in lines[0]
    assert not (tmp_path / "ds").exists()


def test_prepare_stops_at_a_full_disk_and_a_resume_redoes_cut_tiles(tmp_path, monkeypatch, capsys):
    sources(tmp_path / "src", 3)
    argv = ["--input", tmp_path / "src", "--output", tmp_path / "ds", "--size", "32", "--val-fraction", "0", "-q"]
    with monkeypatch.context() as patch:
        disk_full_after(patch, 8000)
        code, lines = run("prepare", [*argv, "--workers", "1"], capsys)
    assert code == 2 and len(lines) == 1 and "No space left" in lines[0]
    train = tmp_path / "ds" / "train"
    assert whole_images(train) and hidden(train) == []
    # A tile cut by an older writer (or another program) is not counted as done by the resume.
    done = sorted(train.glob("*_sat.jpg"))
    cut = done[0].read_bytes()
    done[0].write_bytes(cut[: len(cut) // 2])
    code, lines = run("prepare", argv, capsys)
    assert code == 0 and lines == [] and done[0].read_bytes() == cut
    assert len(list(train.glob("*_sat.jpg"))) == 3 * 4 and whole_images(train)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
@pytest.mark.parametrize("command", ["predict", "mean_iou", "prepare"])
def test_an_unreadable_input_folder_is_one_line(command, model, tmp_path, capsys):
    folder = tmp_path / "in"
    tile(folder / "0_sat.jpg")
    folder.chmod(0)
    argv = {
        "predict": ["--model", model, "--input", folder, "--output", tmp_path / "out", "-q"],
        "mean_iou": ["-g", folder, "-p", tmp_path],
        "prepare": ["--input", folder, "--output", tmp_path / "ds"],
    }[command]
    try:
        code, lines = run(command, argv, capsys)
    finally:
        folder.chmod(0o755)
    assert code == 2 and len(lines) == 1 and str(folder) in lines[0]


@pytest.mark.slow
def test_export_with_an_opset_too_old_is_one_line(tmp_path, capsys):
    pytest.importorskip("tf2onnx")
    from fcn.model.checkpoints import ModelInfo, save_checkpoint
    from helpers import tiny_fcn

    model = tmp_path / "run" / "best.keras"
    model.parent.mkdir()
    save_checkpoint(tiny_fcn("fcn32s"), model, {}, ModelInfo(model="fcn32s", train_scale=1.0))
    tmp_path = tmp_path / "out"
    argv = ["--model", model, "--format", "onnx", "--output", tmp_path / "m.onnx", "--opset", "1", "--no-check"]
    code, lines = run("export", argv, capsys)
    assert code == 2 and len(lines) == 1 and "--opset" in lines[0] and lines[0].startswith("error:")
    assert not tmp_path.exists()  # the folder it created is removed again
