"""fcn.inference.memory: the estimates grow with the image, the scale and the window."""

from fcn.inference.memory import _tile_memory, prediction_memory


def test_prediction_memory_grows_with_the_scale_squared_and_the_window():
    small, large = prediction_memory(512, 512, 1.0), prediction_memory(512, 512, 100.0)
    assert large > 100 * 2**30 > small * 1000
    assert prediction_memory(1024, 1024, 1.0) > 3 * small
    assert _tile_memory(512) == 4 * _tile_memory(256)
