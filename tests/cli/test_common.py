"""fcn.cli.common: one-line errors, exit code 2, and the argparse type checks every command shares."""

import argparse
import logging

import pytest

from fcn.cli.common import (
    ArgumentParser,
    add_message_options,
    add_workers_option,
    fraction,
    multiple_of_32,
    non_negative_float,
    non_negative_int,
    parse_command_line,
    positive_float,
    positive_int,
    run_cli,
)
from fcn.core.errors import InputError


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (positive_int, {"1": 1, "40": 40}, ["0", "-1", "2.5", "x"]),
        (non_negative_int, {"0": 0, "7": 7}, ["-1", "a"]),
        (multiple_of_32, {"32": 32, "512": 512}, ["100", "0", "-64", "16"]),
        (positive_float, {"0.5": 0.5, "3": 3.0}, ["0", "-1", "nan", "inf", "x"]),
        (non_negative_float, {"0": 0.0, "0.2": 0.2}, ["-0.1", "nan"]),
        (fraction, {"0": 0.0, "0.99": 0.99}, ["1", "-0.1", "1.5"]),
    ],
)
def test_type_checks(check, good, bad):
    for text, value in good.items():
        assert check(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            check(text)


def test_multiple_of_32_suggests_one():
    with pytest.raises(argparse.ArgumentTypeError, match="try 96"):
        multiple_of_32("100")


def test_a_bad_flag_is_one_line_and_exit_2(capsys):
    def main(argv):
        parser = ArgumentParser(prog="tool")
        parser.add_argument("--epochs", type=positive_int, default=1)
        parser.add_argument("--name", required=True)
        parser.parse_args(argv)
        return 0

    for argv, flag in (
        (["--epochs", "0", "--name", "x"], "--epochs"),
        ([], "--name"),
        (["--name", "x", "--bogus"], "--bogus"),
    ):
        assert run_cli(main, argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and flag in err[0]


def test_input_errors_and_interrupts(capsys):
    def failing(argv):
        raise InputError("data/x.png: cannot read image")

    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_cli(failing, []) == 2
    assert capsys.readouterr().err == "error: data/x.png: cannot read image\n"
    assert run_cli(interrupted, []) == 130


def test_parse_command_line_sets_the_log_level_of_q_and_v(caplog):
    parser = ArgumentParser(prog="tool")
    add_workers_option(parser, "threads")
    add_message_options(parser)
    fcn_logger = logging.getLogger("fcn")
    for flags, level in ((["-q"], logging.ERROR), ([], logging.INFO), (["-v"], logging.DEBUG)):
        args = parse_command_line(parser, [*flags, "--workers", "3"])
        assert args.workers == 3 and fcn_logger.level == level, flags
    assert parse_command_line(parser, []).workers is None
    with pytest.raises(InputError, match="--workers"):
        parse_command_line(parser, ["--workers", "0"])
