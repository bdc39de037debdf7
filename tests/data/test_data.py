"""fcn.data.pipeline and fcn.data.balance: the tf.data pipeline and class balancing (pairs: test_pairs.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn.core.errors import InputError
from fcn.core.images import read_mask, read_rgb
from fcn.core.palette import PALETTE, UNKNOWN, class_to_rgb, rgb_to_class
from fcn.data.balance import median_frequency_weights
from fcn.data.pairs import find_pairs
from fcn.data.pipeline import make_dataset
from helpers import random_pair, write_pair


def block_tile(rng: np.random.Generator, size: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """A tile whose pixels are the palette colour of their class, in random square blocks.

    The mask is then a known function of the image (the course rule applied to the image), which
    lets the tests check alignment after any geometric augmentation.
    """
    blocks = rng.integers(0, 7, (size // block, size // block), dtype=np.uint8)
    classes = np.kron(blocks, np.ones((block, block), np.uint8))
    return PALETTE[classes], classes


def batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def dihedral(array: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of an (H, W, ...) array."""
    out = []
    for turned in (array, np.flip(array, 1)):
        out.extend(np.rot90(turned, k) for k in range(4))
    return out


# ----------------------------------------------------------------------------- make_dataset


def test_validation_dataset_decodes_exactly_in_order(tmp_path):
    rng = np.random.default_rng(2)
    pairs = [random_pair(tmp_path, f"{i:04d}", rng, size=(24, 40)) for i in range(5)]

    got = batches(make_dataset(pairs, batch_size=2, training=False))

    assert [x.shape for x, _ in got] == [(2, 24, 40, 3), (2, 24, 40, 3), (1, 24, 40, 3)]
    assert all(x.dtype == np.float32 and y.dtype == np.int32 and y.shape == x.shape[:3] for x, y in got)
    images = np.concatenate([x for x, _ in got])
    labels = np.concatenate([y for _, y in got])
    for i, pair in enumerate(pairs):
        # raw RGB 0..255 (not normalised), and labels by the course rule, in the order given
        np.testing.assert_array_equal(images[i], read_rgb(pair.image_path).astype(np.float32))
        np.testing.assert_array_equal(labels[i], read_mask(pair.mask_path))


def test_training_shapes_drop_remainder_and_static_shape(tmp_path):
    rng = np.random.default_rng(3)
    pairs = [random_pair(tmp_path, f"{i:04d}", rng, size=(48, 48)) for i in range(5)]

    dataset = make_dataset(pairs, batch_size=2, training=True, image_size=32, crop=24)

    assert tuple(dataset.element_spec[0].shape) == (2, 24, 24, 3)
    assert tuple(dataset.element_spec[1].shape) == (2, 24, 24)
    got = batches(dataset)
    assert len(got) == 2  # 5 tiles, batch 2: the incomplete batch is dropped when training
    for x, y in got:
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0 and x.max() <= 255 and x.max() > 1
        assert set(np.unique(y)) <= set(range(7))


def test_grayscale_image_expanded_to_rgb(tmp_path):
    gray = np.random.default_rng(4).integers(0, 256, (16, 16), dtype=np.uint8)
    tmp_path.mkdir(exist_ok=True)
    Image.fromarray(gray, mode="L").save(tmp_path / "0001_sat.png")
    Image.fromarray(class_to_rgb(np.zeros((16, 16), np.uint8))).save(tmp_path / "0001_mask.png")

    ((x, _),) = batches(make_dataset(find_pairs(tmp_path), batch_size=1, training=False))

    assert x.shape == (1, 16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(x[0, ..., channel], gray.astype(np.float32))


def test_resize_uses_nearest_for_masks(tmp_path):
    rng = np.random.default_rng(5)
    classes = np.kron(rng.choice([1, 3, 4], (5, 5)).astype(np.uint8), np.ones((7, 7), np.uint8))  # 35x35
    rgb = rng.integers(0, 256, (35, 35, 3), dtype=np.uint8)
    pair = write_pair(tmp_path, "0001", rgb, classes)

    for size in (16, 50):
        ((x, y),) = batches(make_dataset([pair], batch_size=1, training=False, image_size=size))
        assert x.shape == (1, size, size, 3) and y.shape == (1, size, size)
        # nearest neighbour: no blended label can appear (a blend of 1 and 4 would give 2 or 3)
        assert set(np.unique(y)) <= {1, 3, 4}
        assert len(np.unique(y)) >= 2


def test_augmentation_applies_same_flip_and_rotation_to_image_and_mask(tmp_path):
    rng = np.random.default_rng(6)
    rgb, classes = block_tile(rng, 16, 4)
    rgb = rgb // 2 + rng.integers(0, 64, rgb.shape, dtype=np.uint8)  # break the image's symmetry further
    pair = write_pair(tmp_path, "0001", rgb, classes)
    candidates = list(zip(dihedral(rgb.astype(np.float32)), dihedral(classes.astype(np.int32))))

    seen = set()
    for x, y in batches(make_dataset([pair] * 48, batch_size=8, training=True, seed=1)):
        for image, label in zip(x, y):
            matches = [
                k
                for k, (c_img, c_lab) in enumerate(candidates)
                if np.array_equal(image, c_img) and np.array_equal(label, c_lab)
            ]
            assert matches, "image and mask were not transformed together"
            seen.add(matches[0])
    assert len(seen) >= 6  # flips and all four rotations do happen


@pytest.mark.parametrize("crop", [(40, 40), (24, 40)])
def test_crop_keeps_mask_aligned_with_image_exactly(tmp_path, crop):
    # Without scaling nothing is interpolated, so the mask must equal f(image) at every pixel.
    rng = np.random.default_rng(13)
    rgb, classes = block_tile(rng, 64, 8)
    pair = write_pair(tmp_path, "0001", rgb, classes)

    distinct = set()
    for x, y in batches(make_dataset([pair] * 16, batch_size=8, training=True, crop=crop, seed=2)):
        assert x.shape[1:3] == crop and y.shape[1:] == crop
        for image, label in zip(x, y):
            np.testing.assert_array_equal(rgb_to_class(image.astype(np.uint8)), label)
            distinct.add(image.tobytes())
    assert len(distinct) > 8  # more than the 8 flips/rotations of one window: the window moves


@pytest.mark.parametrize("crop", [(40, 40), (24, 40)])
def test_crop_and_scale_keep_mask_aligned_with_image(tmp_path, crop):
    rng = np.random.default_rng(7)
    rgb, classes = block_tile(rng, 96, 12)
    pair = write_pair(tmp_path, "0001", rgb, classes)

    dataset = make_dataset([pair] * 24, batch_size=8, training=True, crop=crop, scale_range=(0.6, 1.6), seed=3)
    interior_fraction = []
    for x, y in batches(dataset):
        assert x.shape[1:3] == crop and y.shape[1:] == crop
        assert set(np.unique(y)) <= set(np.unique(classes))  # labels never interpolated
        for image, label in zip(x, y):
            # Away from region borders and the crop edge (where the bilinear image blends colours)
            # the image must still show exactly its label's colour.
            pad = np.pad(label, 1, constant_values=-1)
            windows = np.lib.stride_tricks.sliding_window_view(pad, (3, 3))
            interior = (windows == label[..., None, None]).all(axis=(-1, -2))
            from_image = rgb_to_class(np.clip(np.round(image), 0, 255).astype(np.uint8))
            np.testing.assert_array_equal(from_image[interior], label[interior])
            interior_fraction.append(interior.mean())
    assert np.mean(interior_fraction) > 0.3


def test_same_seed_same_batches_new_epoch_new_batches(tmp_path):
    rng = np.random.default_rng(8)
    pairs = [random_pair(tmp_path, f"{i:04d}", rng, size=(32, 32)) for i in range(6)]

    def build(seed):
        return make_dataset(pairs, batch_size=3, training=True, crop=24, scale_range=(0.8, 1.25), seed=seed)

    first = build(0)
    epoch1, epoch2 = batches(first), batches(first)
    again = batches(build(0))
    other = batches(build(1))

    for (x1, y1), (x2, y2) in zip(epoch1, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epoch1, epoch2))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epoch1, other))


@pytest.mark.parametrize("to_file", [False, True])
def test_cache_gives_the_same_data(tmp_path, to_file):
    rng = np.random.default_rng(9)
    pairs = [random_pair(tmp_path / "data", f"{i:04d}", rng, size=(32, 32)) for i in range(4)]
    cache = str(tmp_path / "cache") if to_file else True

    plain = batches(make_dataset(pairs, batch_size=2, training=False, image_size=20))
    cached_ds = make_dataset(pairs, batch_size=2, training=False, image_size=20, cache=cache)
    for run in (batches(cached_ds), batches(cached_ds)):
        for (x1, y1), (x2, y2) in zip(plain, run):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    if to_file:
        assert list(tmp_path.glob("cache*"))

    # Training from the cache still gets every tile, augmented and reshuffled per epoch.
    train = make_dataset(pairs, batch_size=4, training=True, cache=cache if not to_file else str(tmp_path / "c2"))
    ((_, y),) = batches(train)
    tiles = [read_mask(p.mask_path) for p in pairs]
    which = sorted(
        i for label in y for i, tile in enumerate(tiles) if any(np.array_equal(label, t) for t in dihedral(tile))
    )
    assert which == [0, 1, 2, 3]


def test_repeat_gives_endless_batches(tmp_path):
    rng = np.random.default_rng(10)
    pairs = [random_pair(tmp_path, f"{i:04d}", rng, size=(16, 16)) for i in range(3)]
    dataset = make_dataset(pairs, batch_size=2, training=True, repeat=True)
    assert len(batches(dataset.take(7))) == 7


def test_tiles_of_different_sizes_need_image_size(tmp_path):
    rng = np.random.default_rng(11)
    pairs = [random_pair(tmp_path, "0001", rng, size=(32, 32)), random_pair(tmp_path, "0002", rng, size=(32, 40))]
    with pytest.raises(InputError, match=r"0002_sat\.png: tile is 32x40"):
        make_dataset(pairs, batch_size=2, training=False)
    ((x, _),) = batches(make_dataset(pairs, batch_size=2, training=False, image_size=16))
    assert x.shape == (2, 16, 16, 3)


def test_crop_larger_than_a_tile_fails_up_front(tmp_path):
    rng = np.random.default_rng(12)
    pairs = [random_pair(tmp_path, "0001", rng, size=(48, 48)), random_pair(tmp_path, "0002", rng, size=(20, 48))]
    with pytest.raises(InputError, match=r"0002_sat\.png: tile is 20x48, smaller than the 32x32 crop"):
        make_dataset(pairs, batch_size=2, training=True, crop=32)


# ----------------------------------------------------------------------------- class weights


def toy_masks() -> list[np.ndarray]:
    a = np.zeros((4, 4), np.uint8)  # 12 urban, 4 forest
    a[0] = 3
    b = np.full((4, 4), 3, np.uint8)  # 8 forest, 6 water, 2 unknown
    b[2:] = 4
    b[3, :2] = UNKNOWN
    c = np.full((2, 8), 4, np.uint8)  # 15 water, 1 urban
    c[0, 0] = 0
    return [a, b, c]


def expected_median_frequency(masks, classes) -> dict[int, float]:
    """Reference computed the slow way: freq(c) = pixels of c / pixels of the masks containing c."""
    freq = {}
    for cls in classes:
        containing = [m for m in masks if (m == cls).any()]
        if containing:
            freq[cls] = sum(int((m == cls).sum()) for m in containing) / sum(m.size for m in containing)
    median = float(np.median(list(freq.values())))
    return {cls: median / f for cls, f in freq.items()}


def test_median_frequency_weights_on_toy_masks():
    masks = toy_masks()
    expected = expected_median_frequency(masks, classes=range(6))  # Unknown left out of the median

    weights = median_frequency_weights(masks)

    assert weights.shape == (7,) and weights.dtype == np.float32
    for cls in range(7):
        np.testing.assert_allclose(weights[cls], expected.get(cls, 0.0), rtol=1e-6)
    assert weights[1] == weights[2] == weights[5] == 0  # absent classes
    assert weights[UNKNOWN] == 0
    # forest (12 of 32 pixels) < urban (13 of 32, the median: weight 1) < water (21 of 32)
    assert weights[3] > weights[0] > weights[4]
    np.testing.assert_allclose(weights[0], 1.0)
    np.testing.assert_allclose(median_frequency_weights(masks, power=0.5), np.sqrt(weights), rtol=1e-6)  # sqrt-median


def test_median_frequency_weights_with_unknown_counted_and_from_files(tmp_path):
    masks = toy_masks()
    expected = expected_median_frequency(masks, classes=range(7))
    pairs = [write_pair(tmp_path, f"{i:04d}", np.zeros((*m.shape, 3), np.uint8), m) for i, m in enumerate(masks)]

    from_arrays = median_frequency_weights(masks, ignore_unknown=False)
    from_files = median_frequency_weights(pairs, ignore_unknown=False)

    np.testing.assert_allclose(from_arrays, [expected.get(c, 0.0) for c in range(7)], rtol=1e-6)
    np.testing.assert_array_equal(from_files, from_arrays)
    assert from_arrays[UNKNOWN] > 0


# ---------------------------------------------------------------- one decoder, pixel weights, colour


def photo_like(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """Smooth colour fields plus grain, as in aerial tiles, so JPEG quantisation acts as on real ones."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    smooth = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=-1)
    return np.clip(127 + 90 * smooth + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("quality", [75, 95])
@pytest.mark.parametrize("subsampling", [0, 2])
def test_training_and_prediction_decode_jpegs_to_identical_pixels(tmp_path, quality, subsampling):
    """tf.data (training) and Pillow (validation, prediction, report) must give the same pixels."""
    import tensorflow as tf

    from fcn.data.pipeline import _decode_image_tf

    path = tmp_path / "tile_sat.jpg"
    Image.fromarray(photo_like(np.random.default_rng(quality))).save(path, quality=quality, subsampling=subsampling)
    from_tf = _decode_image_tf(tf.constant(str(path))).numpy()
    np.testing.assert_array_equal(from_tf, read_rgb(path))
    # TensorFlow's default (fast) DCT would not: the test can tell the two apart.
    fast = tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy()
    assert not np.array_equal(fast, read_rgb(path))


def test_16_bit_pngs_decode_alike_in_both_paths(tmp_path):
    import tensorflow as tf

    from fcn.data.pipeline import _decode_image_tf

    path = tmp_path / "deep_sat.png"
    Image.fromarray((np.arange(48 * 40).reshape(48, 40) * 33).astype(np.uint16)).save(path)
    np.testing.assert_array_equal(_decode_image_tf(tf.constant(str(path))).numpy(), read_rgb(path))


def test_class_weights_become_pixel_weights_of_each_true_class(tmp_path):
    rng = np.random.default_rng(11)
    pairs = [random_pair(tmp_path, f"{i:04d}", rng) for i in range(4)]
    weights = [0.5, 2.0, 1.0, 3.0, 0.25, 1.5, 0.0]
    images, labels, pixel_weights = next(
        iter(make_dataset(pairs, batch_size=4, training=True, crop=16, class_weights=weights))
    )
    np.testing.assert_array_equal(pixel_weights.numpy(), np.array(weights, np.float32)[labels.numpy()])
    with pytest.raises(ValueError, match="7 class weights"):
        make_dataset(pairs, batch_size=4, training=True, class_weights=[1.0])


def test_color_jitter_changes_colours_not_labels(tmp_path):
    rng = np.random.default_rng(12)
    pairs = [write_pair(tmp_path, f"{i:04d}", *block_tile(rng, 32, 8)) for i in range(4)]
    plain = list(make_dataset(pairs, batch_size=4, training=True, seed=5))[0]
    jittered = list(make_dataset(pairs, batch_size=4, training=True, seed=5, color_jitter=0.3))[0]
    np.testing.assert_array_equal(jittered[1].numpy(), plain[1].numpy())  # same geometry, same labels
    difference = np.abs(jittered[0].numpy() - plain[0].numpy())
    assert difference.mean() > 2 and jittered[0].numpy().min() >= 0 and jittered[0].numpy().max() <= 255
