"""The slice table: an.slices and an.spurious paged to the browser; a row click selects its samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqwidgets.compute.spurious import encode_attribute
from dqwidgets.widgets.arrow_pages import sort_page

TABLES = ("slices", "spurious")
_SORT_PREFERENCE = ("error_rate", "label_issue_rate", "lift", "size", "count")


def table_frame(an, which: str) -> pd.DataFrame:
    if which not in TABLES:
        raise ValueError(f"slice table: unknown table {which!r}; expected one of {TABLES}")
    frame = getattr(an, which, None)
    if frame is None:
        return pd.DataFrame()
    frame = frame.reset_index(drop=frame.index.name is None or frame.index.name in frame.columns)
    frame.insert(0, "_key", np.arange(len(frame)))
    return frame


def default_sort(frame: pd.DataFrame) -> str:
    for c in _SORT_PREFERENCE:
        if c in frame.columns:
            return c
    return ""


def table_page(an, which: str, sort: str, descending: bool, offset: int, limit: int) -> tuple[pd.DataFrame, str]:
    frame = table_frame(an, which)
    sort = sort if sort in frame.columns else default_sort(frame)
    return sort_page(frame, sort or None, descending, offset, limit), sort


def rows_of_table_row(an, which: str, key: int) -> np.ndarray:
    """Row numbers of an.samples that a slice (or spurious finding) stands for."""
    frame = table_frame(an, which)
    if not 0 <= key < len(frame):
        raise ValueError(f"slice table: no row {key} in {which} ({len(frame)} rows)")
    row = frame.iloc[key]
    samples = an.samples
    if which == "slices":
        if "slice_id" not in row.index or "slice_id" not in samples.columns:
            raise ValueError("slice table: an.slices or an.samples lacks slice_id")
        return np.flatnonzero(samples["slice_id"].to_numpy() == row["slice_id"])
    for ids_col in ("ids", "sample_ids", "members"):
        if ids_col in row.index and row[ids_col] is not None:
            return np.flatnonzero(samples.index.isin(list(row[ids_col])))
    if "attribute" in row.index and "value" in row.index:
        attr = row["attribute"]
        if attr not in samples.columns:
            raise ValueError(f"slice table: an.samples has no column {attr!r} named by the finding")
        # the finding names a value as the shortcut search encoded it (numbers binned into quantile
        # ranges like "<0.173", few levels formatted, rare texts as "(other)"): encode the column the same way
        codes, names = encode_attribute(samples[attr].to_numpy())
        value = str(row["value"])
        if value not in names:
            raise ValueError(f"slice table: {attr!r} has no value {value!r} in an.samples (values: {names[:8]})")
        mask = codes == names.index(value)
        if "label" in row.index and "label" in samples.columns and pd.notna(row["label"]):
            mask &= samples["label"].astype(str).to_numpy() == str(row["label"])
        valid = getattr(an, "valid", None)  # the search ran on the valid samples only
        if valid is not None and len(valid) == len(mask):
            mask &= np.asarray(valid, dtype=bool)
        return np.flatnonzero(mask)
    raise ValueError(f"slice table: cannot tell which samples {which} row {key} stands for "
                     "(expected slice_id, ids, or attribute/value columns)")
