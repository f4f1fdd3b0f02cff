"""Cheap per-sample properties, added to the metadata for the spurious-correlation search.

A shortcut is often a property nobody labelled: one class photographed brighter, one label
written longer. These numbers let the search find such cues without a model.

Images (computed on a view whose longest side is at most ``PROPERTY_SIDE`` pixels):

- ``brightness``: mean luma (ITU-R BT.601 weights) in [0, 1];
- ``contrast``: RMS contrast, the standard deviation of luma in [0, 1] (Peli 1990,
  "Contrast in complex images", JOSA A 7(10));
- ``sharpness``: variance of the Laplacian of luma, low = blurry (Pech-Pacheco et al. 2000,
  "Diatom autofocusing in brightfield microscopy: a comparative study", ICPR);
- ``width``, ``height`` (of the original image), ``aspect_ratio`` = width / height;
- ``colourfulness``: Hasler & Suesstrunk 2003, "Measuring colourfulness in natural images",
  SPIE 5007, on 0-255 channels;
- ``is_grayscale``: 1.0 when all three channels are equal (or the image has one channel).

Texts: ``n_chars``, ``n_words`` (whitespace-separated), ``non_letter_share`` (share of
non-whitespace characters that are not letters), ``upper_share`` (share of letters that are upper case).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

IMAGE_PROPERTIES = ["brightness", "contrast", "sharpness", "width", "height", "aspect_ratio",
                    "colourfulness", "is_grayscale"]
TEXT_PROPERTIES = ["n_chars", "n_words", "non_letter_share", "upper_share"]
PROPERTY_SIDE = 256
PROPERTIES_VERSION = 1      # part of the cache key: bump when a formula changes


def image_properties(img: Image.Image, original_size: tuple[int, int]) -> np.ndarray:
    """The ``IMAGE_PROPERTIES`` of one decoded image (mode L, RGB or RGBA) as float32."""
    view = img.convert("RGB") if img.mode == "RGBA" else img
    if max(view.size) > PROPERTY_SIDE:
        view = view.copy()
        view.thumbnail((PROPERTY_SIDE, PROPERTY_SIDE), Image.Resampling.BILINEAR)
    a = np.asarray(view, dtype=np.float32)
    if a.ndim == 2:
        luma, grayscale, colourfulness = a, 1.0, 0.0
    else:
        r, g, b = a[..., 0], a[..., 1], a[..., 2]
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        grayscale = float(np.array_equal(r, g) and np.array_equal(g, b))
        rg, yb = r - g, 0.5 * (r + g) - b
        colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    width, height = original_size
    return np.array([luma.mean() / 255.0, luma.std() / 255.0, _laplacian_variance(luma / 255.0),
                     width, height, width / max(height, 1), colourfulness, grayscale], dtype=np.float32)


def _laplacian_variance(x: np.ndarray) -> float:
    if x.shape[0] < 3 or x.shape[1] < 3:
        return 0.0
    lap = (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4.0 * x[1:-1, 1:-1])
    return float(lap.var())


def text_properties(text: str) -> np.ndarray:
    """The ``TEXT_PROPERTIES`` of one text as float32."""
    n_chars = len(text)
    visible = [c for c in text if not c.isspace()]
    letters = [c for c in visible if c.isalpha()]
    non_letter = 1.0 - len(letters) / len(visible) if visible else 0.0
    cased = [c for c in letters if c.isupper() or c.islower()]
    upper = sum(c.isupper() for c in cased) / len(cased) if cased else 0.0
    return np.array([n_chars, len(text.split()), non_letter, upper], dtype=np.float32)
