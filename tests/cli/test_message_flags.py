"""-q (errors only) and -v (debug) mean the same in every command; the progress display is one flag, --progress."""

import logging

import numpy as np
import pytest
from PIL import Image

from fcn.cli import export, mean_iou, predict, prepare_deepglobe, report, synthetic, train
from fcn.cli.common import _setup_logging, run_cli, shows_progress
from fcn.core.errors import InputError
from fcn.core.palette import PALETTE

REQUIRED = {
    train: [],
    predict: ["--model", "m", "--input", "i", "--output", "o"],
    mean_iou: ["-g", "g", "-p", "p"],
    export: ["--model", "m", "--format", "onnx", "--output", "o"],
    report: ["run", "--out", "o"],
    prepare_deepglobe: ["--input", "i", "--output", "o"],
    synthetic: ["out"],
}


@pytest.mark.parametrize("command", REQUIRED, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_q_and_v_in_every_command(command):
    parse = command.get_args_parser().parse_args
    required = REQUIRED[command]
    for flags, level in ((["-q"], -1), (["--quiet"], -1), (["-v"], 1), (["--verbose"], 1), ([], 0)):
        assert getattr(parse([*required, *flags]), "log_level", 0) == level, flags
    with pytest.raises(InputError, match="not allowed with"):
        parse([*required, "-q", "-v"])


@pytest.mark.parametrize("command", [predict, prepare_deepglobe, train], ids=["predict", "prepare", "train"])
def test_progress_is_one_flag_and_q_turns_it_off(command):
    parse = command.get_args_parser().parse_args
    required = REQUIRED[command]
    if command is train:
        assert train._config_of(parse(["--progress", "none", "--train-dir", "t", "--val-dir", "v"])).verbose == 0
        assert train._config_of(parse(["-q", "--train-dir", "t", "--val-dir", "v"])).verbose == 0
        return
    assert shows_progress(parse(required))
    assert not shows_progress(parse([*required, "--progress", "none"]))
    assert not shows_progress(parse([*required, "-q"]))


def test_mean_iou_q_hides_the_absent_class_warning(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for folder in (gt, pred):
        folder.mkdir()
        Image.fromarray(PALETTE[np.zeros((8, 8), int)].astype(np.uint8)).save(folder / "0001_mask.png")
    argv = ["-g", str(gt), "-p", str(pred)]
    assert run_cli(mean_iou.main, argv) == 0
    assert "absent" in capsys.readouterr().err  # every class but one is absent
    assert run_cli(mean_iou.main, [*argv, "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "mean_iou:" in captured.out


def test_librarys_lines_repeating_the_error_show_with_v_only(capsys):
    _setup_logging(0)
    logging.getLogger("rasterio._env").error("_tiffWriteProc: No space left on device.")
    assert capsys.readouterr().err == ""  # fcn's own error line says it
    _setup_logging(1)
    logging.getLogger("rasterio._env").error("_tiffWriteProc: No space left on device.")
    logging.getLogger("rasterio._env").debug("rasterio's own chatter")
    assert capsys.readouterr().err == "_tiffWriteProc: No space left on device.\n"
