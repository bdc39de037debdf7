"""Fixtures shared by the test modules: tiny synthetic tiles, tiny models, one tiny training run."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from helpers import tiny_train_args  # noqa: E402


@pytest.fixture(scope="session")
def tiles(tmp_path_factory):
    """(train_dir, val_dir): 8 + 4 synthetic 64-px tiles; validation holds the tracked ids."""
    from fcn.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("tiles")
    return make_synthetic_dataset(root, n_train=8, n_val=4, size=64, seed=3, ids_val=["0008", "0097", "0107"])


@pytest.fixture(scope="session")
def trained_run(tiles, tmp_path_factory):
    """A tiny FCN8s trained 2 epochs at --image-size 32 (scale 0.5) with the default recipe's class
    balancing (median weights, Unknown ignored) at a constant learning rate."""
    from fcn.cli import train

    run = tmp_path_factory.mktemp("runs") / "run"
    argv = tiny_train_args(
        *tiles,
        run,
        "--epochs",
        "2",
        "--image-size",
        "32",
        "--class-weights",
        "median",
        "--ignore-unknown",
        "--lr",
        "1e-3",
        "--lr-schedule",
        "constant",
        "--warmup",
        "0",
    )
    assert train.main(argv) == 0
    return run


@pytest.fixture(scope="session")
def tiny_fcn8s():
    from helpers import tiny_fcn

    return tiny_fcn("fcn8s")


@pytest.fixture(scope="session")
def pixel_model():
    from helpers import conv_softmax_model

    return conv_softmax_model(1)


@pytest.fixture(autouse=True)
def _default_fcn_logging():
    """After each test the ``fcn`` logger is as a command without ``-q``/``-v`` sets it: one command's ``-q``
    in this worker must not hide another test's messages (nor its ``-v`` add some). It stays non-propagating,
    so that pytest's log capture (caplog) attaches to it at the next test's start."""
    yield
    from fcn.cli.common import _setup_logging

    _setup_logging(0)
