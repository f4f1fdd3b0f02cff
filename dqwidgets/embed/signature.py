"""Perceptual signatures of images and texts, for near-copy detection on the kNN graph's pairs.

An ImageNet embedding of a small image does not keep a shifted, resized or re-encoded copy closer
than the image's natural neighbours; a comparison of the pixels does. Each decoded image gets a
signature: a ``SIDE`` x ``SIDE`` grayscale thumbnail (uint8, box-filtered when the image is larger,
bilinear when smaller; the aspect ratio is not kept, so a resized copy of any shape maps to the same
grid). It is computed in the DataLoader workers where the image is already decoded and cached beside
the embeddings (``SIGNATURE_KEY``). :func:`dqwidgets.compute.duplicates.signature_distance` compares
two signatures by their best normalised cross-correlation over small shifts, allowing either side
to be blurred (what a resize or a re-encoding does), so a 1-2 px shift, a resize, JPEG artefacts and
light noise all keep a copy at a distance far below what distinct neighbours reach.

A text's signature is the sha1 of its normalised form (:func:`normalised_text`: Unicode NFKC, case
folded, punctuation removed, whitespace collapsed): copies that differ only by case, whitespace or
punctuation share it exactly.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np
from PIL import Image

SIDE = 32
SIGNATURE_VERSION = 1  # part of the signature cache key: bump when the thumbnail changes
SIGNATURE_KEY = f"thumbnail{SIDE}@{SIGNATURE_VERSION}"


SIGNATURE_BYTES = SIDE * SIDE + 2


def image_signature(img: Image.Image) -> np.ndarray:
    """uint8 vector of ``SIGNATURE_BYTES``: a ``SIDE`` x ``SIDE`` grayscale thumbnail of a decoded image
    (mode L, RGB or RGBA; transparent pixels count as white, as in
    :func:`dqwidgets.embed.image_source.to_rgb`), then the height and width of its valid top-left
    region. An image larger than ``SIDE`` on a side is box-filtered to the whole grid; a smaller one
    keeps its pixels (a 1-2 px shift stays a whole-pixel shift) in the top-left corner, the rest filled
    by extending its edges."""
    if img.mode == "RGBA":
        from dqwidgets.embed.image_source import to_rgb

        img = to_rgb(img)
    gray = img.convert("L") if img.mode != "L" else img
    w, h = gray.size
    if w > SIDE or h > SIDE:
        grid, h, w = np.asarray(gray.resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.uint8), SIDE, SIDE
    else:
        grid = np.pad(np.asarray(gray, dtype=np.uint8), ((0, SIDE - h), (0, SIDE - w)), mode="edge")
    return np.concatenate([grid.reshape(-1), np.array([h, w], dtype=np.uint8)])


_PUNCT = re.compile(r"[^\w\s]+|_+", re.UNICODE)
_SPACE = re.compile(r"\s+", re.UNICODE)


def normalised_text(text: str) -> str:
    """``text`` with case, whitespace and punctuation folded: NFKC, casefold, every character that is not
    a letter, digit or whitespace removed ("don't" = "dont"), whitespace runs made one space, stripped."""
    t = _PUNCT.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", t).strip()


def text_signatures(texts) -> np.ndarray:
    """sha1 of :func:`normalised_text` per text (object array); None for a missing or blank text and
    for one with no letter or digit (nothing is left to compare)."""
    out = np.full(len(texts), None, dtype=object)
    for i, t in enumerate(texts):
        if isinstance(t, str):
            norm = normalised_text(t)
            if norm:
                out[i] = hashlib.sha1(norm.encode("utf-8", "surrogatepass")).hexdigest()
    return out
