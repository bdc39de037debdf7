"""Tests of fcn.predict: any-size inference, sliding windows, TTA, scale, and the fcn-predict command.

Reference models:
* a random FCN8s (paper_init=False, so its outputs vary with the input) for the real architecture;
* a per-pixel model (1x1 conv + softmax): translation- and flip-equivariant with a 1-pixel receptive
  field, so sliding windows and TTA must reproduce the plain whole-image output to float precision;
* a 5x5-conv model (receptive-field radius 2): windows differ from the whole image only within 2
  pixels of a window's inner edges, which lets us check sliding == whole everywhere else.

The FCN8s receptive field (hundreds of pixels) is larger than any window affordable here, so a
64-pixel window never sees what the whole 96-pixel image sees (measured: |diff| up to ~0.05, ~97%
argmax agreement); its sliding-window test checks the stitching itself against the windows' own
outputs instead of pretending the two should agree.
"""

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from fcn.errors import InputError, run_cli  # noqa: E402
from fcn.images import read_mask  # noqa: E402
from fcn.models import build_model  # noqa: E402
from fcn.palette import NUM_CLASSES, PALETTE  # noqa: E402
from fcn.predict import (  # noqa: E402
    DIHEDRAL,
    Predictor,
    list_input_images,
    load_model,
    main,
    mask_name,
    overlay_name,
    plan_jobs,
    resolve_model_path,
    tile_id,
    window_profile,
    window_starts,
    with_precision,
)


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def conv_softmax_model(kernel_size, num_classes=NUM_CLASSES, seed=0):
    """Conv (kernel_size x kernel_size, same padding) + softmax on RGB 0-255, any input size."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 64)(inputs)
    x = keras.layers.Conv2D(
        num_classes,
        kernel_size,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0 / kernel_size, seed=seed),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed + 1),
    )(x)
    return keras.Model(inputs, keras.layers.Softmax()(x))


@pytest.fixture(scope="module")
def fcn8s():
    keras.utils.set_random_seed(0)
    return build_model("fcn8s", input_shape=(None, None, 3), weights=None, paper_init=False)


@pytest.fixture(scope="module")
def pixel_model():
    return conv_softmax_model(1)


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize("side, window, overlap", [(96, 64, 32), (160, 64, 32), (1023, 512, 64), (513, 512, 0), (150, 64, 16)])
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
def test_odd_sizes_come_back_the_same_size(fcn8s, height, width):
    probs = Predictor(fcn8s).predict_probs(random_image(height, width))
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


def test_whole_image_is_exactly_the_model_on_the_padded_image(fcn8s):
    image = random_image(90, 100, seed=1)
    probs = Predictor(fcn8s, tile=128).predict_probs(image)
    padded = np.pad(image, ((0, 6), (0, 28), (0, 0)), mode="reflect").astype("float32")
    expected = fcn8s.predict(padded[None], verbose=0)[0, :90, :100]
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


def test_fcn_sliding_window_blends_the_windows_outputs(fcn8s):
    image = random_image(96, 96, seed=4)
    sliding = Predictor(fcn8s, tile=64, overlap=32).predict_probs(image)
    assert window_starts(96, 64, 32) == [0, 32]
    windows = {
        (y, x): fcn8s.predict(image[None, y : y + 64, x : x + 64].astype("float32"), verbose=0)[0]
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


def test_tile_at_least_the_image_is_exactly_whole(fcn8s):
    image = random_image(96, 64, seed=5)
    np.testing.assert_array_equal(
        Predictor(fcn8s, tile=96, overlap=32).predict_probs(image), Predictor(fcn8s, tile=512).predict_probs(image)
    )


# ---------------------------------------------------------------- batching, TTA, scale


def test_predict_many_batches_same_size_images_and_keeps_order(pixel_model):
    predictor = Predictor(pixel_model, tile=64, overlap=16, batch_size=4)
    calls = []
    forward = predictor._forward
    predictor._forward = lambda batch: (calls.append(batch.shape), forward(batch))[1]
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


def test_tta_averages_the_inverted_transforms(fcn8s):
    image = random_image(64, 64, seed=7).astype("float32")
    outputs = []
    for k in range(4):
        for flip in (False, True):
            transformed = np.rot90(image[:, ::-1] if flip else image, k)
            probs = fcn8s(np.ascontiguousarray(transformed)[None], training=False).numpy()[0]
            back = np.rot90(probs, -k)
            outputs.append(back[:, ::-1] if flip else back)
    assert len(DIHEDRAL) == len(outputs)
    tta = Predictor(fcn8s, tta=True).predict_probs(image)
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
    forward = predictor._forward
    predictor._forward = lambda batch: (calls.append(batch.shape), forward(batch))[1]
    # A per-pixel model on a constant image predicts the same everywhere, at any scale.
    image = np.full((200, 130, 3), 77, dtype=np.uint8)
    probs = predictor.predict_probs(image)
    assert calls == [(1, 128, 96, 3)]  # 100 x 65 padded to multiples of 32
    np.testing.assert_allclose(probs, np.broadcast_to(probs[0, 0], probs.shape), atol=1e-6)


def test_bad_arguments_are_refused(pixel_model):
    for kwargs in ({"tile": 100}, {"tile": 512, "overlap": 512}, {"scale": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            Predictor(pixel_model, **kwargs)
    with pytest.raises(ValueError, match="RGB"):
        Predictor(pixel_model).predict_probs(np.zeros((10, 10)))


def test_with_precision_changes_the_compute_dtype_but_not_the_output_layer(pixel_model):
    mixed = with_precision(pixel_model, "mixed_bfloat16")
    assert mixed.layers[2].dtype_policy.name == "mixed_bfloat16"
    assert mixed.layers[-1].dtype_policy.name == "float32"
    image = random_image(64, 64)
    np.testing.assert_allclose(
        Predictor(mixed).predict_probs(image), Predictor(pixel_model).predict_probs(image), atol=0.05
    )


# ---------------------------------------------------------------- names and folders


@pytest.mark.parametrize(
    "name, tile, mask", [("0001_sat.jpg", "0001", "0001_mask.png"), ("foo.jpg", "foo", "foo_mask.png"), ("foo.png", "foo", "foo_mask.png"), ("a_sat.jpeg", "a", "a_mask.png")]
)
def test_naming_rules(name, tile, mask):
    assert tile_id(name) == tile
    assert mask_name(name) == mask
    assert overlay_name(name) == f"{tile}_overlay.jpg"


def test_masks_are_not_inputs_and_output_names_must_be_unique(tmp_path):
    for name in ("0001_sat.jpg", "0001_mask.png", "b.png", "notes.txt"):
        (tmp_path / name).touch()
    assert [p.name for p in list_input_images(tmp_path)] == ["0001_sat.jpg", "b.png"]
    (tmp_path / "0001.png").touch()
    with pytest.raises(InputError, match="0001_mask.png"):
        plan_jobs(tmp_path, tmp_path / "out")


def test_run_directory_resolution(tmp_path):
    notes = []
    (tmp_path / "last.keras").touch()
    assert resolve_model_path(tmp_path, note=notes.append) == tmp_path / "last.keras"
    assert len(notes) == 1 and "best.keras" in notes[0]
    (tmp_path / "best.keras").touch()
    assert resolve_model_path(tmp_path, note=notes.append) == tmp_path / "best.keras"
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(InputError, match="neither"):
        resolve_model_path(tmp_path / "empty_run")
    with pytest.raises(InputError, match="no such model"):
        resolve_model_path(tmp_path / "missing.keras")


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "best.keras"
    conv_softmax_model(1).save(path)
    return path


def write_tiles(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, (height, width)) in enumerate(sizes.items()):
        Image.fromarray(random_image(height, width, seed=i)).save(folder / name)
    return folder


def run(argv, capsys):
    code = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_masks_and_reports_a_broken_file(tmp_path, saved_model, capsys):
    sizes = {"0001_sat.jpg": (64, 96), "foo.png": (50, 70), "bar.jpeg": (33, 65)}
    inputs = write_tiles(tmp_path / "in", sizes)
    Image.fromarray(PALETTE[np.zeros((8, 8), np.uint8)]).save(inputs / "0001_mask.png")  # skipped
    (inputs / "broken.jpg").write_bytes(b"not a jpeg at all")
    code, out, err = run(["--model", saved_model.parent, "--input", inputs, "--output", tmp_path / "out", "--overlay", tmp_path / "ov"], capsys)
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "broken.jpg" in error_lines[0]
    assert "3 masks" in out and "images/s" in out
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["0001_mask.png", "bar_mask.png", "foo_mask.png"]
    predictor = Predictor(load_model(saved_model))
    for name, (height, width) in sizes.items():
        mask_path = tmp_path / "out" / mask_name(name)
        with Image.open(mask_path) as mask:
            assert mask.size == (width, height)
            colours = np.unique(np.asarray(mask.convert("RGB")).reshape(-1, 3), axis=0)
        assert all(any((c == p).all() for p in PALETTE) for c in colours)
        # The mask is what the library predicts for that image.
        image = np.asarray(Image.open(tmp_path / "in" / name).convert("RGB"))
        expected = predictor.predict_classes(image)
        np.testing.assert_array_equal(read_mask(mask_path), expected)
        with Image.open(tmp_path / "ov" / overlay_name(name)) as overlay:
            assert overlay.size == (width, height)


def test_cli_run_directory_falls_back_to_last(tmp_path, saved_model, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.keras").write_bytes(saved_model.read_bytes())
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    code, out, err = run(["--model", run_dir, "--input", inputs, "--output", tmp_path / "out", "-q", "--tta", "--scale", "0.5", "--precision", "auto"], capsys)
    assert code == 0, err
    assert "last.keras" in err
    assert (tmp_path / "out" / "a_mask.png").is_file()


@pytest.mark.parametrize("problem", ["missing model", "empty input", "missing input", "output is input", "output links to input", "output is a file"])
def test_cli_refuses_before_any_work(tmp_path, saved_model, capsys, problem):
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    model, output = saved_model, tmp_path / "out"
    if problem == "missing model":
        model = tmp_path / "nope.keras"
    elif problem == "empty input":
        inputs = tmp_path / "empty"
        inputs.mkdir()
    elif problem == "missing input":
        inputs = tmp_path / "nowhere"
    elif problem == "output is input":
        output = inputs
    elif problem == "output links to input":
        output.symlink_to(inputs, target_is_directory=True)
    elif problem == "output is a file":
        output = tmp_path / "file"
        output.write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(["--model", model, "--input", inputs, "--output", output, "-q"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_cli_refuses_an_output_path_that_is_an_input(tmp_path, saved_model, capsys):
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40), "b.png": (40, 40)})
    output = tmp_path / "out"
    output.mkdir()
    (output / "a_mask.png").symlink_to(inputs / "b.png")
    code, _, err = run(["--model", saved_model, "--input", inputs, "--output", output, "-q"], capsys)
    assert code == 2 and "overwrite an input" in err
    assert np.asarray(Image.open(inputs / "b.png")).shape == (40, 40, 3)


def test_cli_refuses_a_model_with_another_class_count(tmp_path, capsys):
    path = tmp_path / "five.keras"
    conv_softmax_model(1, num_classes=5).save(path)
    inputs = write_tiles(tmp_path / "in", {"a.png": (40, 40)})
    code, _, err = run(["--model", path, "--input", inputs, "--output", tmp_path / "out"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "5 classes" in err and "7" in err
    assert not (tmp_path / "out" / "a_mask.png").exists()
