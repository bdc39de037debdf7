"""Small figures: labelled side-by-side montages of tiles and masks, and mask overlays."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

from fcn.core.palette import PALETTE

LABEL_HEIGHT = 16
GAP = 4
OVERLAY_ALPHA = 0.45
OVERLAY_JPEG_QUALITY = 90  # overlays are JPEGs: photos with soft colours
BOUNDARY_RGB = (255, 0, 0)  # pure red is no class colour, so boundaries never look like a class


def montage(panels: list[tuple[str, np.ndarray]], panel_size: int = 256) -> np.ndarray:
    """Place RGB images side by side, each resized to ``panel_size`` px high, with a label above.

    Args:
        panels: (label, (H, W, 3) uint8 image) pairs, left to right.
        panel_size: height of each panel in pixels (masks are resized nearest, photos bilinearly).

    Returns:
        The montage as an (H, W, 3) uint8 array on a white background.
    """
    resized = []
    for label, image in panels:
        height, width = image.shape[:2]
        new_width = max(1, round(width * panel_size / height))
        # Palette masks have few colours: keep them crisp; photos are smoothed.
        few_colours = len(np.unique(image.reshape(-1, 3)[:: max(1, image.size // 30000)], axis=0)) <= 8
        resample = Image.NEAREST if few_colours else Image.BILINEAR
        resized.append((label, Image.fromarray(image).resize((new_width, panel_size), resample)))
    total_width = sum(img.width for _, img in resized) + GAP * (len(resized) - 1)
    canvas = Image.new("RGB", (total_width, panel_size + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for label, img in resized:
        canvas.paste(img, (x, LABEL_HEIGHT))
        draw.text((x + 2, 2), label, fill="black")
        x += img.width + GAP
    return np.asarray(canvas)


def pick_epochs(epochs: list[int]) -> list[int]:
    """The first, a middle and the latest of the recorded epochs (fewer when fewer exist)."""
    epochs = sorted(epochs)
    if len(epochs) <= 3:
        return epochs
    return [epochs[0], epochs[(len(epochs) - 1) // 2], epochs[-1]]


def overlay_image(rgb: np.ndarray, class_map: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The tile blended with its mask's palette colours, class boundaries drawn in red.

    Args:
        rgb: (H, W, 3) uint8 tile.
        class_map: (H, W) class indices.
        alpha: weight of the mask colours.

    Returns:
        (H, W, 3) uint8 image.
    """
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * PALETTE[class_map].astype(np.float32)
    blended = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    blended[find_boundaries(class_map, mode="thick")] = BOUNDARY_RGB
    return blended
