"""Selection: the tiny shared model that holds which samples are selected.

The browser writes it (lasso, box, slice click) and Python reads it; Python writes it
(``Explorer.selection = ids``) and every view in the browser follows. Rows travel as bytes: sorted
uint32 row numbers of ``an.samples``, or a bitmask (one bit per row) when that is smaller, so a
selection of all 1M points is 125 kB, well under the ~10 MB cap on messages from the browser.
"""

from __future__ import annotations

import anywidget
import numpy as np
import traitlets

ENCODINGS = ("indices", "bitmask")


def buffer_bytes(value) -> bytes:
    """``bytes`` from whatever carries a binary buffer here: ipykernel hands the widget ``memoryview``
    objects, solara and tests ``bytes``, and some front ends ``bytearray``."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, np.ndarray):
        return value.tobytes()
    raise TypeError(f"expected a binary buffer (bytes, bytearray or memoryview), not {type(value).__name__}")


class BinaryTrait(traitlets.Bytes):
    """A ``Bytes`` trait that takes what ipykernel delivers (``memoryview``) and ``bytearray`` too.

    Widget state arriving from the browser carries its binary values as buffers, and ipykernel
    hands those over as ``memoryview``: a plain ``traitlets.Bytes`` rejects them, so a selection
    made in JupyterLab never reached Python.
    """

    info_text = "bytes, a bytearray or a memoryview"

    def validate(self, obj, value):
        if isinstance(value, (memoryview, bytearray)):
            value = bytes(value)
        return super().validate(obj, value)


def row_mask(rows, n: int) -> np.ndarray:
    """Boolean mask over ``n`` rows with ``rows`` set (O(n), no sort: 1M rows in milliseconds)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        bad = rows.min() if rows.min() < 0 else rows.max()
        raise ValueError(f"selection: row {bad} is outside 0..{n - 1}")
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


def encode_mask(mask: np.ndarray) -> tuple[str, bytes]:
    """(encoding, bytes) for a boolean row mask: whichever of indices and bitmask is smaller."""
    count = int(np.count_nonzero(mask))
    if count * 4 > (mask.size + 7) // 8:
        return "bitmask", np.packbits(mask, bitorder="little").tobytes()
    return "indices", np.flatnonzero(mask).astype("<u4").tobytes()


def encode_rows(rows, n: int) -> tuple[str, bytes]:
    """(encoding, bytes) for row numbers ``rows`` out of ``n``: whichever encoding is smaller."""
    return encode_mask(row_mask(rows, n))


def decode_rows(encoding: str, data: bytes, n: int) -> np.ndarray:
    """Row numbers (int64, ascending) from the bytes the browser sent."""
    data = buffer_bytes(data)
    if encoding == "indices":
        if len(data) % 4:
            raise ValueError(f"selection: {len(data)} bytes is not a whole number of uint32 rows")
        rows = np.frombuffer(data, dtype="<u4").astype(np.int64)
        return np.flatnonzero(row_mask(rows[rows < n], n))
    if encoding == "bitmask":
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[:n]
        return np.flatnonzero(bits).astype(np.int64)
    raise ValueError(f"selection: unknown encoding {encoding!r}; expected one of {ENCODINGS}")


class Selection(anywidget.AnyWidget):
    """Selected rows of one table of ``n`` samples (the Explorer's views link to it in the browser)."""

    # The views that read it live in the Explorer's bundle; this model has no view of its own.
    _esm = "export default {};"
    n = traitlets.Int(0).tag(sync=True)
    encoding = traitlets.Unicode("indices").tag(sync=True)
    count = traitlets.Int(0).tag(sync=True)
    data = BinaryTrait(b"").tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._error_listeners: list = []

    def on_error(self, callback) -> None:
        """``callback(exception)`` when a message from the browser fails here (the Explorer shows it)."""
        self._error_listeners.append(callback)

    def set_state(self, sync_data):
        # ipywidgets' comm handler swallows what this raises (a traceback on no cell, or a log line):
        # the Explorer that listens shows it to the user, then it goes on to be logged as before
        try:
            super().set_state(sync_data)
        except Exception as e:
            for callback in list(self._error_listeners):
                callback(e)
            raise

    @property
    def rows(self) -> np.ndarray:
        return decode_rows(self.encoding, self.data, self.n)

    @rows.setter
    def rows(self, rows) -> None:
        mask = row_mask(rows, self.n)
        encoding, data = encode_mask(mask)
        count = int(np.count_nonzero(mask))
        # one message per trait, `data` last: the browser acts on `data` and finds the other two
        # already there; and the data goes out before observers (the Explorer's grid) run
        self.encoding = encoding
        self.count = count
        self.data = data
