"""fcn.inference.engine: any-size inference, sliding windows, TTA, scale, and the backends.

Reference models:
* a tiny random FCN8s (the real architecture at 1/16 width, paper_init=False so its outputs vary);
* a per-pixel model (1x1 conv + softmax): translation- and flip-equivariant with a 1-pixel receptive
  field, so sliding windows and TTA must reproduce the plain whole-image output to float precision;
* a 5x5-conv model (receptive-field radius 2): windows differ from the whole image only within 2
  pixels of a window's inner edges, which lets us check sliding == whole everywhere else.

The FCN8s receptive field (hundreds of pixels) is larger than any window affordable here, so its
sliding-window test checks the stitching itself against the windows' own outputs.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.core.palette import NUM_CLASSES  # noqa: E402
from fcn.inference.engine import DIHEDRAL, KerasBackend, Predictor, window_profile, window_starts  # noqa: E402
from fcn.model.checkpoints import ModelInfo  # noqa: E402
from helpers import conv_softmax_model, random_image  # noqa: E402

# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "side, window, overlap", [(96, 64, 32), (160, 64, 32), (1023, 512, 64), (513, 512, 0), (150, 64, 16)]
)
def test_window_starts_cover_the_axis_with_the_overlap(side, window, overlap):
    starts = window_starts(side, window, overlap)
    assert starts[0] == 0 and starts[-1] + window == side
    gaps = np.diff(starts)
    assert np.all(gaps > 0) and np.all(window - gaps >= overlap)
    # The fewest windows: with one window fewer, evenly spaced, the overlap would be too small.
    if len(starts) == 2:
        assert side > window
    elif len(starts) > 2:
        assert (side - window) / (len(starts) - 2) > window - overlap


def test_window_profile_is_positive_flat_on_borders_and_ramps_sum_to_one():
    up = window_profile(64, 16, ramp_start=True, ramp_end=False)
    down = window_profile(64, 16, ramp_start=False, ramp_end=True)
    assert np.all(up > 0) and up[-1] == 1 and down[0] == 1
    np.testing.assert_allclose(down[-16:] + up[:16], 1.0, rtol=1e-6)
    assert np.all(np.diff(up[:16]) > 0)
    assert np.all(window_profile(64, 16, False, False) == 1)


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("height, width", [(333, 500), (100, 70), (1, 1)])
def test_odd_sizes_come_back_the_same_size(tiny_fcn8s, height, width):
    probs = Predictor(tiny_fcn8s).predict_probs(random_image(height, width))
    assert probs.shape == (height, width, NUM_CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_class_maps_are_the_argmax_of_the_probabilities(pixel_model):
    image = random_image(100, 70)
    predictor = Predictor(pixel_model)
    classes = predictor.predict_classes(image)
    assert classes.shape == (100, 70) and classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, predictor.predict_probs(image).argmax(-1))
    assert len(np.unique(classes)) > 1


@pytest.mark.parametrize("height, width", [(333, 500), (40, 150), (100, 70)])
def test_sliding_window_sizes_come_back_the_same_size(pixel_model, height, width):
    probs = Predictor(pixel_model, tile=64, overlap=16).predict_probs(random_image(height, width))
    assert probs.shape == (height, width, NUM_CLASSES)


def test_whole_image_is_exactly_the_model_on_the_padded_image(tiny_fcn8s):
    image = random_image(90, 100, seed=1)
    probs = Predictor(tiny_fcn8s, tile=128).predict_probs(image)
    padded = np.pad(image, ((0, 6), (0, 28), (0, 0)), mode="reflect").astype("float32")
    expected = tiny_fcn8s.predict(padded[None], verbose=0)[0, :90, :100]
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_a_fixed_size_model_predicts_other_sizes():
    model = conv_softmax_model(1)
    inputs = keras.Input((64, 64, 3))
    fixed = keras.Model(inputs, model(inputs))  # same layers and weights, fixed 64x64 input
    image = random_image(96, 130)
    np.testing.assert_allclose(Predictor(fixed).predict_probs(image), Predictor(model).predict_probs(image), atol=1e-6)


# ---------------------------------------------------------------- sliding window


@pytest.mark.parametrize("height, width, tile, overlap", [(150, 200, 64, 16), (70, 300, 64, 0), (333, 500, 128, 64)])
def test_sliding_window_equals_whole_for_a_per_pixel_model(pixel_model, height, width, tile, overlap):
    image = random_image(height, width, seed=2)
    whole = Predictor(pixel_model, tile=512).predict_probs(image)
    sliding = Predictor(pixel_model, tile=tile, overlap=overlap, batch_size=3).predict_probs(image)
    np.testing.assert_allclose(sliding, whole, atol=1e-6)


def _exact_positions(side, window, overlap, radius):
    """Pixels of an axis that no window sees within ``radius`` of one of its inner edges."""
    exact = np.ones(side, dtype=bool)
    for start in window_starts(side, window, overlap):
        if start > 0:
            exact[start : start + radius] = False
        if start + window < side:
            exact[start + window - radius : start + window] = False
    return exact


def test_sliding_window_equals_whole_away_from_window_edges():
    radius = 2
    model = conv_softmax_model(2 * radius + 1, seed=3)
    image = random_image(96, 160, seed=3)  # multiples of 32: the whole image runs unpadded
    whole = Predictor(model, tile=512).predict_probs(image)
    sliding = Predictor(model, tile=64, overlap=32).predict_probs(image)
    exact = np.outer(_exact_positions(96, 64, 32, radius), _exact_positions(160, 64, 32, radius))
    assert exact.mean() > 0.8
    np.testing.assert_allclose(sliding[exact], whole[exact], atol=1e-6)
    top2 = np.sort(whole, axis=-1)[..., -2:]
    clear = exact & (top2[..., 1] - top2[..., 0] > 1e-4)
    np.testing.assert_array_equal(sliding.argmax(-1)[clear], whole.argmax(-1)[clear])
    # Near the inner window edges the windows really see zero padding: the comparison is sharp.
    assert np.abs(sliding - whole)[~exact].max() > 1e-4


def test_fcn_sliding_window_blends_the_windows_outputs(tiny_fcn8s):
    image = random_image(96, 96, seed=4)
    sliding = Predictor(tiny_fcn8s, tile=64, overlap=32).predict_probs(image)
    assert window_starts(96, 64, 32) == [0, 32]
    windows = {
        (y, x): tiny_fcn8s.predict(image[None, y : y + 64, x : x + 64].astype("float32"), verbose=0)[0]
        for y in (0, 32)
        for x in (0, 32)
    }
    # Corners are seen by one window only: exactly that window's output.
    np.testing.assert_allclose(sliding[:32, :32], windows[0, 0][:32, :32], atol=1e-6)
    np.testing.assert_allclose(sliding[64:, 64:], windows[32, 32][32:, 32:], atol=1e-6)
    np.testing.assert_allclose(sliding[:32, 64:], windows[0, 32][:32, 32:], atol=1e-6)
    # Edge strips are seen by two windows: blended with the ramps of window_profile, in the right axis.
    fading = window_profile(64, 32, ramp_start=False, ramp_end=True)[32:, None, None]  # window at 0
    rising = window_profile(64, 32, ramp_start=True, ramp_end=False)[:32, None, None]  # window at 32
    left_strip = (fading * windows[0, 0][32:, :32] + rising * windows[32, 0][:32, :32]) / (fading + rising)
    np.testing.assert_allclose(sliding[32:64, :32], left_strip, atol=1e-6)
    fading, rising = fading.reshape(1, 32, 1), rising.reshape(1, 32, 1)
    top_strip = (fading * windows[0, 0][:32, 32:] + rising * windows[0, 32][:32, :32]) / (fading + rising)
    np.testing.assert_allclose(sliding[:32, 32:64], top_strip, atol=1e-6)
    # The centre is seen by all four: a convex combination of their outputs there.
    centre = np.stack([w[32 - y : 64 - y, 32 - x : 64 - x] for (y, x), w in windows.items()])
    assert np.all(sliding[32:64, 32:64] >= centre.min(0) - 1e-6)
    assert np.all(sliding[32:64, 32:64] <= centre.max(0) + 1e-6)
    np.testing.assert_allclose(sliding.sum(-1), 1.0, rtol=1e-5)


def test_tile_at_least_the_image_is_exactly_whole(tiny_fcn8s):
    image = random_image(96, 64, seed=5)
    np.testing.assert_array_equal(
        Predictor(tiny_fcn8s, tile=96, overlap=32).predict_probs(image),
        Predictor(tiny_fcn8s, tile=512).predict_probs(image),
    )


# ---------------------------------------------------------------- batching, TTA, scale


def test_predict_many_batches_same_size_images_and_keeps_order(pixel_model):
    predictor = Predictor(pixel_model, tile=64, overlap=16, batch_size=4)
    calls = []
    backend = predictor.backend
    predictor.backend = lambda batch: (calls.append(batch.shape), backend(batch))[1]
    sizes = [(64, 64), (64, 64), (50, 40), (64, 64), (150, 150)]
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    results = list(predictor.predict_many(iter(images)))
    # 150 px with 64-px windows overlapping by >= 16: 3 x 3 windows, in batches of 4.
    assert calls == [(2, 64, 64, 3), (1, 64, 64, 3), (1, 64, 64, 3), (4, 64, 64, 3), (4, 64, 64, 3), (1, 64, 64, 3)]
    single = Predictor(pixel_model, tile=64, overlap=16, batch_size=1)
    for image, result in zip(images, results):
        assert result.shape == image.shape[:2]
        np.testing.assert_array_equal(result, single.predict_classes(image))


def test_tta_of_an_equivariant_model_is_the_plain_output(pixel_model):
    image = random_image(70, 100, seed=6)  # not square, padded: rotations change the batch shape
    plain = Predictor(pixel_model).predict_probs(image)
    np.testing.assert_allclose(Predictor(pixel_model, tta=True).predict_probs(image), plain, atol=1e-6)


def test_tta_averages_the_inverted_transforms(tiny_fcn8s):
    image = random_image(64, 64, seed=7).astype("float32")
    outputs = []
    for k in range(4):
        for flip in (False, True):
            transformed = np.rot90(image[:, ::-1] if flip else image, k)
            probs = tiny_fcn8s(np.ascontiguousarray(transformed)[None], training=False).numpy()[0]
            back = np.rot90(probs, -k)
            outputs.append(back[:, ::-1] if flip else back)
    assert len(DIHEDRAL) == len(outputs)
    tta = Predictor(tiny_fcn8s, tta=True).predict_probs(image)
    np.testing.assert_allclose(tta, np.mean(outputs, axis=0), atol=1e-5)
    assert np.abs(tta - outputs[0]).max() > 1e-3  # FCN8s is not equivariant: TTA changes its output


@pytest.mark.parametrize("scale, tile", [(0.5, 512), (0.418, 64), (1.7, 512)])
def test_scale_returns_the_original_size(pixel_model, scale, tile):
    image = random_image(333, 250, seed=8)
    predictor = Predictor(pixel_model, scale=scale, tile=tile, overlap=16)
    probs = predictor.predict_probs(image)
    assert probs.shape == (333, 250, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert predictor.predict_classes(image).shape == (333, 250)


def test_scale_runs_the_model_at_the_scaled_size(pixel_model):
    predictor = Predictor(pixel_model, scale=0.5)
    calls = []
    backend = predictor.backend
    predictor.backend = lambda batch: (calls.append(batch.shape), backend(batch))[1]
    # A per-pixel model on a constant image predicts the same everywhere, at any scale.
    image = np.full((200, 130, 3), 77, dtype=np.uint8)
    probs = predictor.predict_probs(image)
    assert calls == [(1, 128, 96, 3)]  # 100 x 65 padded to multiples of 32
    np.testing.assert_allclose(probs, np.broadcast_to(probs[0, 0], probs.shape), atol=1e-6)


def test_scale_is_one_resize_in_and_the_same_resize_out():
    """Working pixels are fcn.inference.resize's (uint8-rounded); probabilities come back by the same resize."""
    from fcn.inference.resize import resize_float, resize_image

    def softmax(batch):
        e = np.exp(batch / 64.0)
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)

    class Softmax:  # probabilities that are a known per-pixel function of the working pixels
        num_classes, info, seen = 3, ModelInfo(), []

        def __call__(self, batch):
            self.seen.append(batch.copy())
            return softmax(batch)

    image = random_image(90, 70, seed=4)
    backend = Softmax()
    probs = Predictor(backend, scale=0.6).predict_probs(image)
    work = resize_image(image, (54, 42))
    np.testing.assert_array_equal(backend.seen[0][0, :54, :42], work)
    np.testing.assert_allclose(probs, resize_float(softmax(work.astype(np.float32)), (90, 70)), rtol=1e-6)


def test_bad_arguments_are_refused(pixel_model):
    for kwargs in ({"tile": 100}, {"tile": 512, "overlap": 512}, {"scale": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            Predictor(pixel_model, **kwargs)
    with pytest.raises(ValueError, match="RGB"):
        Predictor(pixel_model).predict_probs(np.zeros((10, 10)))


# ---------------------------------------------------------------- the model's own scale, backends


def test_default_scale_is_the_models_training_scale(pixel_model):
    assert Predictor(pixel_model).scale == 1.0  # a model without information: as it is
    pixel_model.fcn_info = ModelInfo(train_scale=0.5, tile_gsd=1.2)
    try:
        assert Predictor(pixel_model).scale == 0.5
        assert Predictor(pixel_model, scale=0.8).scale == 0.8  # an explicit scale wins
        # The input's own resolution: 0.6 m/px inputs for a model that learned 2.4 m/px -> 0.25.
        assert Predictor(pixel_model, input_gsd=0.6).scale == pytest.approx(0.25)
    finally:
        del pixel_model.fcn_info


def test_input_gsd_needs_a_model_that_knows_its_gsd(pixel_model):
    with pytest.raises(ValueError, match="ground sample distance"):
        Predictor(pixel_model, input_gsd=0.5)


def test_any_backend_object_runs_through_the_same_engine(pixel_model):
    class NumpyBackend:
        """A backend that is not Keras: the per-pixel model's own arithmetic in numpy."""

        num_classes = NUM_CLASSES
        info = ModelInfo()

        def __call__(self, batch):
            conv = pixel_model.layers[2]
            logits = (batch / 64) @ conv.kernel.numpy()[0, 0] + conv.bias.numpy()
            exp = np.exp(logits - logits.max(-1, keepdims=True))
            return (exp / exp.sum(-1, keepdims=True)).astype(np.float32)

    image = random_image(150, 100, seed=9)
    options = dict(scale=0.7, tile=64, overlap=16, tta=True)
    expected = Predictor(KerasBackend(pixel_model), **options).predict_probs(image)
    np.testing.assert_allclose(Predictor(NumpyBackend(), **options).predict_probs(image), expected, atol=1e-5)


def test_replace_shares_the_backend_and_changes_only_what_is_asked(pixel_model):
    predictor = Predictor(pixel_model, tile=64, overlap=8, batch_size=3)
    other = predictor.replace(scale=0.5, batch_size=1)
    assert other.backend is predictor.backend
    assert (other.scale, other.batch_size, other.tile, other.overlap, other.tta) == (0.5, 1, 64, 8, False)
    assert predictor.scale == 1.0 and predictor.batch_size == 3
    with pytest.raises(TypeError, match="colour"):
        predictor.replace(colour=1)
    with pytest.raises(ValueError, match="scale"):
        predictor.replace(scale=0)
