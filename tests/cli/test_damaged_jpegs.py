"""A JPEG damaged mid-file (end marker kept, 200 bytes zeroed) is refused by predict and prepare_deepglobe as
by train: one error line naming it, the other inputs still done, exit 2 (the one check of fcn.core.jpeg_check)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn.cli import predict, prepare_deepglobe
from fcn.cli.common import run_cli
from fcn.core.palette import PALETTE

pytest.importorskip("tensorflow")


def jpeg_bytes(seed: int, side: int = 64) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def damage(path: Path) -> None:
    """Zero 200 bytes in the middle, keeping the end marker: Pillow still decodes it without a word."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(200)
    path.write_bytes(bytes(data))
    with Image.open(path) as img:
        img.load()


def sources(folder: Path, ids, side: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, source_id in enumerate(ids):
        (folder / f"{source_id}_sat.jpg").write_bytes(jpeg_bytes(number, side))
        classes = np.random.default_rng(number).integers(0, 7, (side, side))
        Image.fromarray(PALETTE[classes].astype(np.uint8)).save(folder / f"{source_id}_mask.png")
    return folder


def errors_of(command, argv, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = run_cli(command, [str(a) for a in argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_predict_names_the_damaged_jpeg_and_writes_the_others(tmp_path, capsys):
    from fcn.model.checkpoints import ModelInfo, save_checkpoint
    from helpers import conv_softmax_model

    model = tmp_path / "best.keras"
    save_checkpoint(conv_softmax_model(1), model, {}, ModelInfo(model="test", train_scale=1.0))
    inputs = sources(tmp_path / "in", ["1", "2", "3"])
    damage(inputs / "2_sat.jpg")
    code, errors = errors_of(predict.main, ["--model", model, "--input", inputs, "--output", tmp_path / "out"], capsys)
    assert code == 2 and len(errors) == 1 and "2_sat.jpg: damaged JPEG (Corrupt JPEG data" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1_mask.png", "3_mask.png"]


def test_prepare_deepglobe_names_the_damaged_source_and_tiles_the_others(tmp_path, capsys):
    inputs = sources(tmp_path / "dg", ["1", "2", "3"])
    damage(inputs / "3_sat.jpg")
    argv = ["--input", inputs, "--output", tmp_path / "out", "--size", 16, "--val-fraction", 0]
    code, errors = errors_of(prepare_deepglobe.main, argv, capsys)
    assert code == 2 and len(errors) == 1 and "3_sat.jpg: damaged JPEG" in errors[0]
    written = {p.name.split("_")[0] for p in (tmp_path / "out" / "train").iterdir()}
    assert written == {"1", "2"}
