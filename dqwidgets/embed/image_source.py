"""Open one image from any source a Dataset holds, refusing hostile input before it is decoded.

A source is a file path (str / Path, relative to the dataset root), raw encoded bytes, a
Hugging Face image dict (``{"bytes": ..., "path": ...}``), a PIL image or a numpy array
(H x W, H x W x C or C x H x W with C in 1, 3, 4).

What is refused, with a reason, and never read whole or decoded:

- a path that does not exist, a symlink loop, anything that is not a regular file (FIFO,
  socket, device, folder), an empty file, a file larger than ``max_file_bytes``;
- an image whose header announces more than ``max_pixels`` pixels (a 50,000 x 50,000 PNG,
  decompression bombs): the size is read from the header by ``PIL.Image.open``, which is lazy;
- a truncated or corrupt file: PIL fails while decoding and the error becomes the reason.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MAX_PIXELS = 64_000_000          # 8,000 x 8,000; PIL's own bomb limit is ~89.5M
MAX_FILE_BYTES = 256 * 2 ** 20


class UnreadableImage(Exception):
    """Raised with a short reason ("symlink loop", "corrupt or truncated image (...)"); the reason names no
    path (the sample id does), so equal problems group together in a summary."""


def source_kind(value) -> str | None:
    """"path" | "bytes" | "hf" | "pil" | "array" | None (missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (str, os.PathLike)):
        return "path"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, dict):
        return "hf"
    if isinstance(value, Image.Image):
        return "pil"
    if isinstance(value, np.ndarray):
        return "array"
    return type(value).__name__


def resolve_path(value, root: Path | None) -> Path:
    p = Path(value)
    return p if p.is_absolute() or root is None else root / p


def check_regular_file(path: Path, max_file_bytes: int = MAX_FILE_BYTES) -> os.stat_result:
    """stat() the path, following symlinks, and refuse anything that is not a readable regular file."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnreadableImage("symlink loop") from None
        if e.errno == errno.ENOENT:
            raise UnreadableImage("file not found") from None
        raise UnreadableImage(f"cannot stat the file ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableImage(f"not a regular file ({_file_kind(st.st_mode)})")
    if st.st_size == 0:
        raise UnreadableImage("empty file")
    if st.st_size > max_file_bytes:
        raise UnreadableImage(f"file too large ({st.st_size:,} bytes > {max_file_bytes:,})")
    return st


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "special file"


def hash_source(value, root: Path | None) -> str:
    """sha1 of the raw data: file bytes, encoded bytes, or array/pixel bytes plus shape and dtype."""
    kind = source_kind(value)
    h = hashlib.sha1()
    if kind == "path":
        path = resolve_path(value, root)
        check_regular_file(path)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    elif kind == "bytes":
        h.update(bytes(value))
    elif kind == "hf":
        return hash_source(_hf_payload(value), root)
    elif kind == "pil":
        h.update(f"{value.mode}{value.size}".encode())
        h.update(value.tobytes())
    elif kind == "array":
        arr = np.ascontiguousarray(value)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    elif kind is None:
        raise UnreadableImage("missing image (empty cell)")
    else:
        raise UnreadableImage(f"unsupported image value of type {kind}")
    return h.hexdigest()


def _hf_payload(value: dict):
    if value.get("bytes") is not None:
        return value["bytes"]
    if value.get("path"):
        return value["path"]
    raise UnreadableImage("Hugging Face image dict holds neither bytes nor a path")


def open_image(value, root: Path | None = None, draft_size: int | None = None,
               max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, tuple[int, int]]:
    """Decode one image safely. Returns ``(image in mode L, RGB or RGBA, original (width, height))``.

    ``draft_size`` lets JPEG decoding scale down by a power of two while keeping both sides
    at least that large (much faster for big photos)."""
    kind = source_kind(value)
    if kind == "hf":
        return open_image(_hf_payload(value), root, draft_size, max_pixels)
    if kind == "array":
        img = _array_to_image(value, max_pixels)
        return img, img.size
    if kind == "pil":
        _check_pixels(value.size, max_pixels, "PIL image")
        return _normalise_mode(value), value.size
    if kind == "path":
        path = resolve_path(value, root)
        check_regular_file(path)
        return _decode(lambda: open(path, "rb"), "image file", draft_size, max_pixels)
    if kind == "bytes":
        data = bytes(value)
        if not data:
            raise UnreadableImage("empty image bytes")
        return _decode(lambda: io.BytesIO(data), "image bytes", draft_size, max_pixels)
    if kind is None:
        raise UnreadableImage("missing image (empty cell)")
    raise UnreadableImage(f"unsupported image value of type {kind}")


def _check_pixels(size, max_pixels, what):
    w, h = size
    if w <= 0 or h <= 0:
        raise UnreadableImage(f"{what} has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise UnreadableImage(f"image too large: {w}x{h} pixels (limit {max_pixels:,}); "
                              "decompression bomb refused, not decoded")


def _decode(open_fn, what, draft_size, max_pixels):
    try:
        with open_fn() as fh, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fh)          # lazy: reads only the header
            size = img.size
            _check_pixels(size, max_pixels, what)
            if draft_size and img.format == "JPEG":
                img.draft(img.mode if img.mode in ("L", "RGB") else "RGB", (draft_size, draft_size))
            img.load()
            return _normalise_mode(img), size
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(f"image too large, decompression bomb refused: {e}") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image PIL can identify") from None
    except Exception as e:  # truncated files, bad chunks, zlib errors, oversized text chunks...
        raise UnreadableImage(f"corrupt or truncated image ({type(e).__name__}: {e})") from None


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Return an image in L, RGB or RGBA; 16-bit and float images are rescaled to 8 bits."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode in ("L", "RGB", "RGBA"):
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _array_to_image(np.asarray(img), None)
    if img.mode in ("LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")


def _array_to_image(arr: np.ndarray, max_pixels: int | None) -> Image.Image:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)          # C x H x W -> H x W x C
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise UnreadableImage(f"array of shape {np.shape(arr)} is not an image (need H x W, H x W x 3/4)")
    if max_pixels is not None:
        _check_pixels((a.shape[1], a.shape[0]), max_pixels, "array image")
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise UnreadableImage("array image holds NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 1:
            a = a * 255.0
        elif lo < 0 or hi > 255:
            a = (a - lo) / max(hi - lo, 1e-12) * 255.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))   # L, RGB or RGBA from the shape


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB view; transparent pixels are composited over white."""
    if img.mode == "RGB":
        return img
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")
