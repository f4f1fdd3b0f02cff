"""The input size an image model runs at, chosen from the data instead of fixed at 224 px.

A CNN costs about the square of its input side. Upscaling a 28-px Fashion-MNIST image to 224 px
spends 64x the work of the image itself on interpolated pixels, so the built-in embedder runs at
the data's own scale: the median shorter side of a sample of the images, rounded up to a multiple
of the network's stride (32), at least ``floor`` (the network needs a few cells in its last feature
map) and at most ``cap`` (its training resolution; larger photos are still downscaled to it).

Only image headers are read (``PIL.Image.open`` is lazy; arrays and PIL images know their shape),
at most ``SAMPLE`` of them, spread evenly over the dataset, so the choice is deterministic for a
dataset and costs milliseconds. The chosen size is part of the cache key (``cache_key``), so a
cached embedding at one size is never reused at another.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from dqwidgets.embed.image_source import UnreadableImage, _hf_payload, check_regular_file, resolve_path, source_kind

SAMPLE = 256
STRIDE = 32


def input_size_for(sides, floor: int = 64, cap: int = 224, stride: int = STRIDE) -> int:
    """Median of ``sides`` rounded up to a multiple of ``stride``, clamped to [floor, cap];
    ``cap`` when no side is known."""
    sides = [int(s) for s in sides if s is not None and s > 0]
    if floor > cap:
        raise ValueError(f"input_size_for: floor {floor} is above cap {cap}")
    if not sides:
        return int(cap)
    median = float(np.median(sides))
    return int(min(cap, max(floor, stride * math.ceil(median / stride))))


def shorter_side(value, root=None) -> int | None:
    """The shorter side in pixels of one image source, from its header only; ``None`` when unknown."""
    kind = source_kind(value)
    try:
        if kind == "hf":
            return shorter_side(_hf_payload(value), root)
        if kind == "array":
            shape = np.shape(value)
            if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
                shape = shape[1:]                     # C x H x W
            return int(min(shape[:2])) if len(shape) >= 2 else None
        if kind == "pil":
            return int(min(value.size))
        if kind == "path":
            path = resolve_path(value, root)
            check_regular_file(path)
            with Image.open(path) as img:
                return int(min(img.size))
        if kind == "bytes":
            with Image.open(io.BytesIO(bytes(value))) as img:
                return int(min(img.size))
    except (UnreadableImage, OSError, ValueError, Image.DecompressionBombError):
        return None
    return None


def sample_sides(values, root=None, sample: int = SAMPLE) -> list[int]:
    """Shorter sides of up to ``sample`` images spread evenly over ``values`` (unreadable ones skipped)."""
    n = len(values)
    if n == 0:
        return []
    picks = np.unique(np.linspace(0, n - 1, num=min(n, sample)).round().astype(np.int64))
    return [s for s in (shorter_side(values[i], root) for i in picks) if s is not None]
