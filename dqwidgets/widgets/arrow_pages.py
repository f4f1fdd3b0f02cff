"""Pages of table rows for the browser as Arrow IPC streams (sorting and slicing stay in the kernel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def _browser_safe(col: pd.Series) -> pd.Series:
    """Columns the browser can read: numbers as float64/int32/bool, everything else as text."""
    if pd.api.types.is_bool_dtype(col):
        return col.astype(bool)
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_extension_array_dtype(col):
        if col.size == 0 or (col.abs().max() < 2**31):
            return col.astype(np.int32)
        return col.astype(np.float64)
    if pd.api.types.is_float_dtype(col):
        return col.astype(np.float64)
    return col.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype(object)


def frame_to_ipc(frame: pd.DataFrame) -> bytes:
    """One Arrow IPC stream holding ``frame`` (index dropped; column names as text)."""
    safe = pd.DataFrame({str(c): _browser_safe(frame[c]) for c in frame.columns}, index=range(len(frame)))
    table = pa.Table.from_pandas(safe, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def sort_page(frame: pd.DataFrame, sort: str | None, descending: bool, offset: int, limit: int) -> pd.DataFrame:
    """Rows ``offset:offset+limit`` of ``frame`` sorted by column ``sort`` (missing values last)."""
    if offset < 0 or limit < 0:
        raise ValueError(f"page: offset and limit must be >= 0, got offset={offset}, limit={limit}")
    if sort:
        if sort not in frame.columns:
            raise ValueError(f"page: no column {sort!r} to sort by; columns are {list(frame.columns)}")
        frame = frame.sort_values(sort, ascending=not descending, na_position="last", kind="stable")
    return frame.iloc[offset: offset + limit]
