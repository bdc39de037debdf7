"""FCN8s levers from the FCN papers: scaled skip inputs (``skip_scaling`` / ``--skip-scaling``) and
staged training (``--init-from``: a trained FCN32s's matching layers into a new FCN8s)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.cli import train  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.model.builders import SKIP_SCALES, build_model  # noqa: E402
from fcn.model.weights import _copy_matching_weights, init_from_checkpoint  # noqa: E402
from helpers import TINY_WIDTH, random_image, tiny_train_args  # noqa: E402


def randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in layer.get_weights()])
    return model


def test_skip_scaling_adds_parameter_free_rescaling_and_round_trips(tmp_path):
    plain = build_model("fcn8s", input_shape=(None, None, 3), weights=None, width=TINY_WIDTH)
    scaled = build_model("fcn8s", input_shape=(None, None, 3), weights=None, width=TINY_WIDTH, skip_scaling=True)
    assert scaled.count_params() == plain.count_params()
    for pool, factor in SKIP_SCALES.items():
        layer = scaled.get_layer(f"scale_{pool}")
        assert isinstance(layer, keras.layers.Rescaling) and layer.scale == factor and not layer.weights
    assert SKIP_SCALES == {"pool4": 0.01, "pool3": 0.0001}
    # FCN16s scales its one skip; FCN32s has none.
    assert [
        layer.name
        for layer in build_model("fcn16s", weights=None, width=TINY_WIDTH, skip_scaling=True).layers
        if layer.name.startswith("scale_")
    ] == ["scale_pool4"]
    assert not any(
        layer.name.startswith("scale_")
        for layer in build_model("fcn32s", weights=None, width=TINY_WIDTH, skip_scaling=True).layers
    )

    randomise(scaled)
    image = random_image(64, 64)[None].astype("float32")
    scaled.save(tmp_path / "scaled.keras")
    loaded = keras.saving.load_model(tmp_path / "scaled.keras", compile=False)
    assert loaded.get_layer("scale_pool3").scale == 0.0001
    np.testing.assert_allclose(loaded.predict(image, verbose=0), scaled.predict(image, verbose=0), rtol=1e-6)
    # The same weights without the scaling give other scores: the skips really are scaled.
    plain.set_weights(scaled.get_weights())
    assert not np.allclose(plain.predict(image, verbose=0), scaled.predict(image, verbose=0))


def test_copy_matching_weights_takes_the_fcn32s_trunk_into_an_fcn8s(tmp_path):
    fcn32s = randomise(build_model("fcn32s", input_shape=(None, None, 3), weights=None, width=TINY_WIDTH))
    fcn8s = build_model("fcn8s", input_shape=(None, None, 3), weights=None, width=TINY_WIDTH)
    taken = _copy_matching_weights(fcn8s, fcn32s)
    assert taken == [f"block{b}_conv{c}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for c in range(1, n + 1)] + [
        "fc_1",
        "fc_2",
        "score",
    ]
    for name in taken:
        for mine, theirs in zip(fcn8s.get_layer(name).get_weights(), fcn32s.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert not np.any(fcn8s.get_layer("score_pool4").kernel.numpy())  # the new skips keep their zero init
    # A layer with another shape is left alone (fc_1 with a 7x7 kernel here); a .keras file works too.
    fcn32s.save(tmp_path / "fcn32s.keras")
    other = build_model("fcn8s", input_shape=(None, None, 3), weights=None, width=TINY_WIDTH, fc1_kernel_size=7)
    taken = init_from_checkpoint(other, tmp_path / "fcn32s.keras")
    assert "fc_1" not in taken and "fc_2" in taken and "score" in taken


def test_init_from_a_missing_source_is_refused_before_anything_is_built(tiles, tmp_path):
    # The flags taking effect in a training run: tests/training/test_train.py (the recipe flags).
    with pytest.raises(InputError, match="--init-from"):
        train.main(tiny_train_args(*tiles, tmp_path / "x", "--init-from", tmp_path / "missing"))
    assert not (tmp_path / "x").exists()
