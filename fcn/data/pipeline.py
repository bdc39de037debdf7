"""The tf.data input pipeline: decode, resize, augment and batch tile/mask pairs for the model.

:func:`make_dataset` turns pairs (from :func:`fcn.data.pairs.find_pairs`) into a
``tf.data.Dataset`` of ``(image, label)`` batches: float32 RGB in 0..255 (the model does its own
preprocessing) and int32 class indices. TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fcn.core.errors import InputError
from fcn.core.images import image_size as read_image_size
from fcn.core.palette import CODE_TO_CLASS, NUM_CLASSES
from fcn.core.workers import io_workers
from fcn.data.pairs import CHECK_WORKERS, Pair

# Ground sample distance of the course tiles: DeepGlobe's 0.5 m pixels, a 1224 px quadrant shrunk to 512.
COURSE_TILE_GSD = 0.5 * 1224 / 512


def _rgb_to_class_tf(mask_rgb):
    """The course rule of :func:`fcn.core.palette.rgb_to_class` on a TensorFlow tensor (inside tf.data).

    Args:
        mask_rgb: (..., H, W, C) uint8 tensor with C >= 3.

    Returns:
        (..., H, W) uint8 tensor of class indices.
    """
    import tensorflow as tf

    bits = tf.cast(mask_rgb[..., :3] >= 128, tf.int32)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    return tf.gather(tf.constant(CODE_TO_CLASS), code)


def _as_hw(size: int | Sequence[int] | None, what: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"{what} must be positive, got {size}")
    return height, width


def _decode_image_tf(path):
    """Read and decode a tile inside TensorFlow: (H, W, 3) uint8 RGB; grayscale expanded, alpha dropped."""
    import tensorflow as tf

    data = tf.io.read_file(path)
    # libjpeg's accurate integer DCT: the same pixels Pillow (fcn.core.images.read_rgb) decodes, so the
    # model is scored and used on exactly the inputs it trained on.
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False),
    )


def _decode_mask_tf(path):
    """Read a palette mask inside TensorFlow and decode it to (H, W) uint8 class indices."""
    return _rgb_to_class_tf(_decode_image_tf(path))


def resize_image_tf(image, size):
    """Bilinear resize of an (H, W, 3) tile to ``size`` (height, width); returns float32.

    Antialiased when shrinking in either direction (a plain bilinear shrink aliases fine
    textures); the cheaper plain bilinear when only enlarging.
    """
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    shrinking = tf.reduce_any(tf.shape(image)[:2] > tf.convert_to_tensor(size, tf.int32))
    return tf.cond(
        shrinking,
        lambda: tf.image.resize(image, size, method="bilinear", antialias=True),
        lambda: tf.image.resize(image, size, method="bilinear"),
    )


def resize_tile_tf(image, size):
    """:func:`resize_image_tf`, rounded back to uint8: how training (``--image-size``) and prediction
    (``scale``) resize a tile, so that both see the same pixels."""
    return round_to_uint8_tf(resize_image_tf(image, size))


def round_to_uint8_tf(image):
    """Float pixels rounded (half to even), clipped to 0-255 and cast to uint8."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _resize_mask_tf(mask, size: tuple[int, int]):
    """Nearest-neighbour resize of an (H, W) class map: labels are never blended."""
    import tensorflow as tf

    return tf.image.resize(mask[..., None], size, method="nearest")[..., 0]


def _color_jitter(image, seed, strength: float):
    """Random brightness, contrast and saturation factors in [1 - strength, 1 + strength]; uint8 out."""
    import tensorflow as tf

    brightness_seed, contrast_seed, saturation_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    image = tf.cast(image, tf.float32) / 255.0
    image = image * tf.random.stateless_uniform([], brightness_seed, 1 - strength, 1 + strength)
    image = tf.image.stateless_random_contrast(image, 1 - strength, 1 + strength, contrast_seed)
    image = tf.image.stateless_random_saturation(image, 1 - strength, 1 + strength, saturation_seed)
    return round_to_uint8_tf(image * 255.0)


def _augment(image, mask, seed, *, crop, scale_range, color_jitter=0.0):
    """Joint random scale, crop, flips and 90-degree rotation of one tile and its mask.

    ``image`` is (H, W, 3) uint8, ``mask`` (H, W) uint8, ``seed`` a shape-(2,) int64 tensor. The
    same window is cut from both; scaling then interpolates bilinear for the image and nearest for
    the mask, and the same flips and rotation are applied to both.
    """
    import tensorflow as tf

    scale_seed, top_seed, left_seed, flip_lr_seed, flip_ud_seed, rot_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=6)
    )
    if color_jitter:
        image = _color_jitter(image, tf.random.experimental.stateless_fold_in(seed, 7), color_jitter)
    shape = tf.shape(mask)
    height, width = shape[0], shape[1]
    out_h, out_w = crop if crop is not None else (height, width)

    if scale_range is not None:
        # Zooming by `factor` then cropping out_h x out_w equals cropping a window of
        # out / factor and resizing it to out_h x out_w, which only interpolates the pixels kept.
        # The factor is raised where needed so the window fits in the tile (no label padding).
        low, high = scale_range
        factor = tf.random.stateless_uniform([], scale_seed, low, high)
        h_f, w_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        out_h_f, out_w_f = tf.cast(out_h, tf.float32), tf.cast(out_w, tf.float32)
        factor = tf.maximum(factor, tf.maximum(out_h_f / h_f, out_w_f / w_f))
        window_h = tf.clip_by_value(tf.cast(tf.round(out_h_f / factor), tf.int32), 1, height)
        window_w = tf.clip_by_value(tf.cast(tf.round(out_w_f / factor), tf.int32), 1, width)
    else:
        window_h, window_w = out_h, out_w

    if crop is not None or scale_range is not None:
        top = tf.random.stateless_uniform([], top_seed, 0, height - window_h + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([], left_seed, 0, width - window_w + 1, dtype=tf.int32)
        image = image[top : top + window_h, left : left + window_w]
        mask = mask[top : top + window_h, left : left + window_w]
    if scale_range is not None:
        image = resize_image_tf(image, (out_h, out_w))
        mask = _resize_mask_tf(mask, (out_h, out_w))

    # The same random draws move image and mask alike. (Stacking them into one tensor would
    # guarantee it by construction, but a channel concat costs more than all these ops together.)
    def maybe_reverse(tensors, flip_seed, axis):
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        return tuple(tf.cond(flip, lambda t=t: tf.reverse(t, axis=[axis]), lambda t=t: t) for t in tensors)

    image, mask = maybe_reverse((image, mask), flip_lr_seed, axis=1)
    image, mask = maybe_reverse((image, mask), flip_ud_seed, axis=0)
    # A quarter turn swaps height and width; for non-square outputs only the half turn keeps the shape.
    quarter_turns = tf.random.stateless_uniform([], rot_seed, 0, 4, dtype=tf.int32)
    quarter_turns = tf.where(tf.equal(out_h, out_w), quarter_turns, 2 * (quarter_turns // 2))
    image = tf.image.rot90(image, quarter_turns)
    mask = tf.image.rot90(mask[..., None], quarter_turns)[..., 0]
    return image, mask


def _check_sizes(pairs, resize_to, crop, batch_size) -> None:
    """Fail now, naming the tile, if the tiles cannot be cropped or batched as asked.

    ``crop`` is None unless training. Tile sizes are read from the headers, in parallel.
    """
    if resize_to is not None:
        if crop is not None and (crop[0] > resize_to[0] or crop[1] > resize_to[1]):
            raise ValueError(f"crop {crop} is larger than image_size {resize_to}")
        return
    must_fit_crop = crop is not None
    must_be_uniform = crop is None and batch_size > 1
    if not (must_fit_crop or must_be_uniform):
        return
    with ThreadPoolExecutor(max_workers=io_workers(CHECK_WORKERS)) as pool:
        sizes = list(pool.map(lambda p: read_image_size(p.image_path), pairs))
    for pair, (height, width) in zip(pairs, sizes):
        if must_fit_crop and (height < crop[0] or width < crop[1]):
            raise InputError(f"{pair.image_path}: tile is {height}x{width}, smaller than the {crop[0]}x{crop[1]} crop")
        if must_be_uniform and (height, width) != sizes[0]:
            raise InputError(
                f"{pair.image_path}: tile is {height}x{width} but {pairs[0].image_path.name} is "
                f"{sizes[0][0]}x{sizes[0][1]}; tiles of different sizes need image_size (or batch size 1)"
            )


def _checked_geometry(pairs, batch_size, training, image_size, crop, scale_range):
    """``make_dataset``'s size arguments checked against each other and the tiles.

    Returns:
        (resize_to, crop, scale_range) as (height, width) pairs and a float range; crop and
        scale_range are None for validation data.
    """
    if not pairs:
        raise ValueError("make_dataset needs at least one pair")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    resize_to = _as_hw(image_size, "image_size")
    crop = _as_hw(crop, "crop") if training else None
    if not training:
        scale_range = None
    if scale_range is not None:
        low, high = (float(v) for v in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        scale_range = (low, high)
    _check_sizes(pairs, resize_to, crop, batch_size)
    return resize_to, crop, scale_range


def make_dataset(
    pairs: Sequence[Pair],
    *,
    batch_size: int,
    training: bool,
    image_size: int | Sequence[int] | None = None,
    crop: int | Sequence[int] | None = None,
    scale_range: tuple[float, float] | None = None,
    seed: int = 0,
    cache: bool | str = False,
    drop_remainder: bool | None = None,
    repeat: bool = False,
    color_jitter: float = 0.0,
    class_weights: Sequence[float] | None = None,
):
    """Build the tf.data input pipeline for training or validation.

    Per tile: read and decode in parallel (JPEG/PNG, grayscale expanded to RGB), decode the mask
    to class indices with the course rule, optionally resize to ``image_size`` (bilinear image,
    nearest mask), optionally cache, then, when training, augment image and mask together:
    random scale (``scale_range``), random crop (``crop``), random horizontal and vertical flips
    and a random 0/90/180/270-degree rotation (only 0/180 when the output is not square). Labels
    are never interpolated. Training data is shuffled; validation data is neither shuffled nor
    augmented. Images are NOT normalised: the model expects raw RGB 0..255.

    Randomness is stateless and keyed by ``seed``: two datasets built with the same arguments
    yield identical batches, and every epoch (iteration) gets a new shuffle and new augmentations.

    Args:
        pairs: from :func:`find_pairs`.
        batch_size: examples per batch.
        training: shuffle and augment (True) or not (False).
        image_size: resize every tile (and mask) to this size first; int or (height, width).
        crop: training only: random crop of this size (int or (height, width)), same window for
            image and mask. Must fit in every tile (checked now).
        scale_range: training only: (low, high) random zoom factor, applied with the crop (the
            output shows a window of crop / factor pixels of the tile). The factor is raised where
            needed so that the window fits in the tile; without ``crop`` the output keeps the
            tile size, so only factors above 1 (zoom in) have an effect.
        seed: seed for shuffling and augmentation.
        cache: keep decoded (and resized) tiles, before augmentation: True for memory (uint8,
            about 1 MB per 512x512 tile; training also needs a shuffle buffer of the same size),
            or a file path prefix for an on-disk cache.
        drop_remainder: drop the last incomplete batch. Default: True for training when there is
            at least one full batch, False for validation.
        repeat: repeat forever (the caller then passes ``steps_per_epoch``).
        color_jitter: training only: random brightness, contrast and saturation factors in
            [1 - color_jitter, 1 + color_jitter] (0: off).
        class_weights: one weight per class; each batch then also carries per-pixel sample weights
            (the weight of the pixel's true class), which Keras multiplies into the loss.

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)`` (``(images, labels, pixel_weights)`` with
        ``class_weights``): float32 (B, H, W, 3) in 0..255, int32 (B, H, W) class indices 0..6 and
        float32 (B, H, W) weights.

    Raises:
        InputError: tiles of different sizes without ``image_size`` (when batching), or a tile
            smaller than ``crop``; the message names the tile.
        ValueError: no pairs, or bad sizes/ranges.
    """
    import tensorflow as tf

    pairs = list(pairs)
    resize_to, crop, scale_range = _checked_geometry(pairs, batch_size, training, image_size, crop, scale_range)
    if class_weights is not None and len(class_weights) != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} class weights, got {len(class_weights)}")
    if drop_remainder is None:
        drop_remainder = training and len(pairs) >= batch_size

    load = _tile_loader(resize_to)
    autotune = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices(([str(p.image_path) for p in pairs], [str(p.mask_path) for p in pairs]))
    if training and not cache:
        # Shuffle the file names, not decoded tiles: a buffer of the whole list costs nothing.
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=autotune, deterministic=True)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        if training:
            ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    if training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

        def augment(example, element_seed):
            return _augment(*example, element_seed, crop=crop, scale_range=scale_range, color_jitter=color_jitter)

        ds = ds.map(augment, num_parallel_calls=autotune, deterministic=True)

    to_model_types = _batch_converter(crop or resize_to, batch_size if drop_remainder else None, class_weights)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=autotune, deterministic=True)
    ds = ds.map(to_model_types, num_parallel_calls=autotune, deterministic=True)
    return ds.prefetch(autotune)


def _tile_loader(resize_to):
    """tf.data map function: file paths -> (uint8 tile, uint8 class map), resized when asked."""
    import tensorflow as tf

    def load(image_path, mask_path):
        image = _decode_image_tf(image_path)
        mask = _decode_mask_tf(mask_path)
        if resize_to is not None:
            # Tiles already at the size skip the (antialiased, hence not free) resize.
            same_size = tf.reduce_all(tf.equal(tf.shape(mask), resize_to))
            image = tf.cond(same_size, lambda: image, lambda: resize_tile_tf(image, resize_to))
            mask = tf.cond(same_size, lambda: mask, lambda: _resize_mask_tf(mask, resize_to))
        return image, mask

    return load


def _batch_converter(out_hw, batch_dim, class_weights):
    """tf.data map function: a uint8 batch (4x less copying) -> the model's types, with pixel weights."""
    import tensorflow as tf

    def to_model_types(images, masks):
        images = tf.cast(images, tf.float32)
        labels = tf.cast(masks, tf.int32)
        if out_hw is not None:
            images = tf.ensure_shape(images, (batch_dim, *out_hw, 3))
            labels = tf.ensure_shape(labels, (batch_dim, *out_hw))
        if class_weights is None:
            return images, labels
        return images, labels, tf.gather(tf.constant(class_weights, tf.float32), labels)

    return to_model_types
