"""``--resume RUN``: the run keeps its own settings and epoch count; a flag that would change it is refused."""

import logging

import pytest

pytest.importorskip("keras")

from fcn.core.errors import InputError  # noqa: E402
from fcn.model.runfiles import RunFiles  # noqa: E402
from fcn.training.config import TrainConfig, config_to_json  # noqa: E402
from helpers import train_config  # noqa: E402


@pytest.fixture
def stopped_run(tmp_path):
    """A 4-epoch FCN8s run directory with a last.keras (its content is not read by the config)."""
    run = tmp_path / "run"
    run.mkdir()
    config = TrainConfig(model="fcn8s", train_dir=tmp_path / "t", val_dir=tmp_path / "v", out=run, epochs=4, lr=2e-4)
    RunFiles(run).write_config(config_to_json(config), {}, resumed=False)
    (run / "last.keras").write_bytes(b"stand-in")
    return run


def test_resume_keeps_the_runs_own_epochs_unless_given(stopped_run):
    config, _ = train_config(["--resume", str(stopped_run)])
    assert config.epochs == 4 and config.resume and config.lr == 2e-4
    assert train_config(["--resume", str(stopped_run), "--epochs", "6"])[0].epochs == 6


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--model", "fcn32s"], "--model fcn32s"),
        (["--lr", "1e-3"], "--lr 0.001"),
        (["--batch-size", "2", "--recipe", "seed"], "--batch-size 2"),
        (["--train-dir", "elsewhere"], "--train-dir elsewhere"),
        (["--out", "other"], "--out other"),
    ],
)
def test_a_flag_that_would_change_the_run_is_refused_by_name(stopped_run, flags, named):
    with pytest.raises(InputError, match=named) as caught:
        train_config(["--resume", str(stopped_run), *flags])
    assert "\n" not in str(caught.value)


def test_flags_equal_to_the_runs_are_accepted_and_runtime_flags_applied_and_said(stopped_run, caplog):
    flags = ["--model", "fcn8s", "--lr", "2e-4", "--out", str(stopped_run), "--cache", "--jit-compile", "off"]
    with caplog.at_level(logging.INFO, logger="fcn.training.resume"):
        config, _ = train_config(["--resume", str(stopped_run), *flags])
    assert config.cache and config.jit_compile == "off" and config.model == "fcn8s"
    assert "--cache True" in caplog.text and "--jit-compile off" in caplog.text
