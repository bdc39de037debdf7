"""fcn.inference.scenes: constants that must follow the model."""

import pytest

from fcn.inference.scenes import NEUTRAL_RGB


def test_nodata_fill_is_the_models_imagenet_mean_colour():
    builders = pytest.importorskip("fcn.model.builders")
    assert tuple(int(round(v)) for v in reversed(builders.IMAGENET_BGR_MEAN)) == NEUTRAL_RGB
