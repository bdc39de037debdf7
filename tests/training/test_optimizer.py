"""fcn.training.optimizer: schedules over the run's steps, the encoder's learning rate, weight averaging."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.model.checkpoints import save_checkpoint  # noqa: E402
from fcn.training.optimizer import (  # noqa: E402
    SwapEMAWeights,
    _head_optimizer,
    _learning_rate_schedule,
    current_learning_rate,
    make_optimizer,
    uses_ema,
)


def rates(schedule, steps):
    return np.array([float(schedule(step)) if callable(schedule) else schedule for step in steps])


def test_constant_without_warmup_is_a_plain_number():
    assert _learning_rate_schedule(1e-4, 100) == 1e-4


def test_warmup_then_cosine_spans_the_whole_run():
    schedule = _learning_rate_schedule(1e-3, 200, "cosine", warmup=0.1)
    values = rates(schedule, range(0, 201))
    assert values[0] == pytest.approx(1e-5) and values[20] == pytest.approx(1e-3)
    assert np.all(np.diff(values[:21]) > 0) and np.all(np.diff(values[20:]) <= 0)
    assert values[-1] == pytest.approx(1e-5)  # 1 % of the peak at the last step
    # The same fractions on a longer run: the shape scales with --epochs.
    longer = rates(_learning_rate_schedule(1e-3, 2000, "cosine", warmup=0.1), range(0, 2001, 10))
    np.testing.assert_allclose(longer, values, rtol=1e-4)


def test_constant_with_warmup_ramps_then_stays():
    values = rates(_learning_rate_schedule(1e-3, 100, "constant", warmup=0.2), range(101))
    assert values[0] == pytest.approx(1e-5) and np.all(values[20:] == pytest.approx(1e-3))


def test_bad_schedule_arguments_are_refused():
    with pytest.raises(ValueError):
        _learning_rate_schedule(1e-3, 10, "poly")
    with pytest.raises(ValueError):
        _learning_rate_schedule(1e-3, 10, warmup=1.0)


def tiny_vgg_like():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 1, name="block1_conv1")(inputs)
    outputs = keras.layers.Conv2D(2, 1, name="score")(x)
    return keras.Model(inputs, outputs)


def test_encoder_multiplier_gives_the_encoder_its_own_learning_rate():
    model = tiny_vgg_like()
    model.compile(make_optimizer(1e-2, 10, encoder_lr_mult=0.1), "mse")
    before = {layer.name: layer.kernel.numpy().copy() for layer in model.layers[1:]}
    x, y = np.ones((2, 4, 4, 3), "float32"), np.zeros((2, 4, 4, 2), "float32")
    model.fit(x, y, epochs=1, verbose=0)
    # Adam's first step moves each weight by about its learning rate.
    step = {
        name: np.abs(layer.kernel.numpy() - before[name]).max()
        for name, layer in ((layer.name, layer) for layer in model.layers[1:])
    }
    assert step["block1_conv1"] == pytest.approx(1e-3, rel=0.05) and step["score"] == pytest.approx(1e-2, rel=0.05)
    assert current_learning_rate(model.optimizer) == pytest.approx(1e-2)
    assert _head_optimizer(model.optimizer).name == "head"


def test_averaged_weights_are_validated_and_saved_then_swapped_back_on_resume(tmp_path):
    model = tiny_vgg_like()
    model.compile(make_optimizer(1e-2, 10, ema_momentum=0.5), "mse")
    assert uses_ema(model.optimizer)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 4, 4, 3)).astype("float32"), rng.normal(size=(4, 4, 4, 2)).astype("float32")
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            average = self.model.optimizer._model_variables_moving_average[0].numpy()
            seen[epoch] = (self.model.layers[1].kernel.numpy().copy(), average.copy())
            if epoch == 0:
                save_checkpoint(self.model, tmp_path / "last.keras", {"epoch": 1})

    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[SwapEMAWeights(), Spy()])
    in_model, in_slot = seen[0]
    assert not np.allclose(in_model, in_slot)  # at an epoch's end the model holds the average...
    resumed = keras.saving.load_model(tmp_path / "last.keras")
    np.testing.assert_array_equal(resumed.layers[1].kernel.numpy(), in_model)  # ...and so does the checkpoint
    swap = SwapEMAWeights(swapped_in=True)
    swap.set_model(resumed)
    swap.on_epoch_begin(1)
    np.testing.assert_array_equal(resumed.layers[1].kernel.numpy(), in_slot)  # training resumes from the raw weights
