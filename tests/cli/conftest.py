"""The model the command tests share."""

import pytest


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A 1x1 conv + softmax saved as a run directory's best.keras (loads in a fraction of a second)."""
    from fcn.model.checkpoints import ModelInfo, save_checkpoint
    from helpers import conv_softmax_model

    run = tmp_path_factory.mktemp("run")
    save_checkpoint(conv_softmax_model(1), run / "best.keras", {}, ModelInfo(model="test", train_scale=1.0))
    return run / "best.keras"
