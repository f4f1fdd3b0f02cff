"""Features for a table: numeric columns standardised, categorical columns one-hot encoded.

No model is needed. Numeric columns (and booleans, and datetimes as seconds) become z-scores;
a missing numeric value becomes 0 (the column mean) plus a ``<col>=missing`` indicator column.
Categorical columns are one-hot encoded over their ``max_levels`` most frequent values, the rest
share an ``other`` column; a missing value is its own level. Two rows that differ in one
categorical column are sqrt(2) apart in it, about as far as a two-sigma numeric difference.

A last constant column of 1 (``<constant>``, the homogeneous coordinate) keeps the size of a row in the
cosine geometry the kNN graph uses: without it a table of one numeric column became +1 or -1 after
normalising, every row an exact copy of half the others (298 of 300 flagged as duplicates), and rows
that differ only in magnitude were one point. With many columns it moves every angle little.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TABULAR_VERSION = "2"  # 2: the constant column


def tabular_features(frame: pd.DataFrame, columns: list[str], max_levels: int = 50) -> tuple[np.ndarray, list[str]]:
    """Return ``(features float32 N x D, feature names)`` built from ``columns`` of ``frame``."""
    if not columns:
        raise ValueError("tabular data needs at least one feature column besides the label, split and id "
                         "columns; pass features with Dataset.from_arrays for precomputed embeddings")
    blocks, names = [], []
    for col in columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s) \
                or pd.api.types.is_datetime64_any_dtype(s):
            block, block_names = _numeric(s, col)
        else:
            block, block_names = _one_hot(s, col, max_levels)
        blocks.append(block)
        names.extend(block_names)
    blocks.append(np.ones((len(frame), 1)))
    names.append("<constant>")
    return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32), names


def _numeric(s: pd.Series, col: str):
    if pd.api.types.is_datetime64_any_dtype(s):
        values = s.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9
        values[s.isna().to_numpy()] = np.nan
    else:
        values = s.astype(np.float64).to_numpy(na_value=np.nan, copy=True)
    values[~np.isfinite(values)] = np.nan
    missing = np.isnan(values)
    mean = np.nanmean(values) if (~missing).any() else 0.0
    std = np.nanstd(values) if (~missing).any() else 0.0
    z = np.where(missing, 0.0, (values - mean) / (std if std > 0 else 1.0))
    if missing.any():
        return np.column_stack([z, missing]), [col, f"{col}=missing"]
    return z[:, None], [col]


def _one_hot(s: pd.Series, col: str, max_levels: int):
    values = s.astype(object).where(s.notna(), None)
    counts = pd.Series(values.map(lambda v: "<missing>" if v is None else str(v))).value_counts()
    keep = list(counts.index[:max_levels])
    labels = values.map(lambda v: "<missing>" if v is None else str(v)).to_numpy()
    if len(counts) > max_levels:
        labels = np.where(np.isin(labels, keep), labels, "<other>")
        keep.append("<other>")
    codes = pd.Categorical(labels, categories=keep).codes
    block = np.zeros((len(s), len(keep)), dtype=np.float32)
    block[np.arange(len(s)), codes] = 1.0
    return block, [f"{col}={k}" for k in keep]
