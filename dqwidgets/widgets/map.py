"""The map's columns, encoded for the browser: positions as float32 bytes, colours as uint8 bytes.

Positions (8 bytes a point) are sent once and again only when the layout changes; switching the
colour resends one uint8 column (1 byte a point); the flag column says which points stand out.
A widget never computes a score: these only re-encode columns of ``an.samples``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dqwidgets.issues import BY_RANK, FLAG_COLUMNS

MAX_CATEGORIES = 255
CATEGORICAL_COLUMNS = ("issue", "label", "suggested_label", "given_label", "slice_id", "split")


@dataclass
class Colour:
    column: str
    continuous: bool
    categories: list
    codes: np.ndarray  # uint8, one per sample

    def info(self) -> dict:
        return {"column": self.column, "continuous": self.continuous, "categories": self.categories}


def normalised_positions(x, y) -> tuple[np.ndarray, str]:
    """Interleaved float32 x, y in [-0.95, 0.95] keeping the aspect ratio, and a notice if any are missing."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    xy = np.zeros((x.size, 2), dtype=np.float32)
    if not ok.any():
        return xy.reshape(-1), "no layout yet: every point is drawn at the centre until it arrives"
    cx = (x[ok].min() + x[ok].max()) / 2
    cy = (y[ok].min() + y[ok].max()) / 2
    half = max(x[ok].max() - x[ok].min(), y[ok].max() - y[ok].min(), 1e-12) / 2
    xy[ok, 0] = (x[ok] - cx) / half * 0.95
    xy[ok, 1] = (y[ok] - cy) / half * 0.95
    notice = "" if ok.all() else f"{int((~ok).sum()):,} samples have no position yet (drawn at the centre)"
    return xy.reshape(-1), notice


def score_codes(values) -> np.ndarray:
    """Scores in [0, 1] as uint8 0..255 (missing = 0)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.round(np.clip(v, 0.0, 1.0) * 255).astype(np.uint8)


def category_codes(values: pd.Series) -> tuple[np.ndarray, list]:
    """uint8 codes and category names; beyond 254 categories the rarest share the code "other".

    Vectorised: the values are factorised once and only the distinct values are turned into text,
    so 1M samples cost tens of milliseconds, not a Python call per sample.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # distinct values that print the same (1 and "1") share a name; missing values are "(missing)"
    text = [str(u) for u in uniques] + ["(missing)"]
    codes = np.where(codes < 0, len(uniques), codes)
    names_all, name_of = np.unique(np.asarray(text, dtype=object), return_inverse=True)
    counts = np.bincount(name_of[codes], minlength=len(names_all))
    present = np.flatnonzero(counts)
    if len(present) > MAX_CATEGORIES:
        by_count = present[np.argsort(-counts[present], kind="stable")]
        keep = by_count[: MAX_CATEGORIES - 1]
        names = sorted((str(names_all[k]) for k in keep), key=_natural_key) + ["other"]
    else:
        keep = present
        names = sorted((str(names_all[k]) for k in keep), key=_natural_key)
    position = {name: i for i, name in enumerate(names)}
    lookup = np.full(len(names_all), position.get("other", 0), dtype=np.uint8)
    for k in keep:
        lookup[k] = position[str(names_all[k])]
    return lookup[name_of[codes]], names


def _natural_key(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def flag_mask(samples: pd.DataFrame) -> np.ndarray:
    """True for samples flagged by any issue (they are drawn bigger)."""
    mask = np.zeros(len(samples), dtype=bool)
    for c in FLAG_COLUMNS:
        if c in samples.columns:
            mask |= samples[c].fillna(False).to_numpy(dtype=bool)
    return mask


def issue_order(samples: pd.DataFrame) -> list[str]:
    """The map's "issue" colours for these samples: "fine", each issue type they have a flag column
    for, lowest rank first (dqwidgets.issues), and "dropped". Thresholds and drops never change it,
    so no issue is recoloured by them; an issue type the analysis has no column for (e.g. low AUM
    without a training run) is not in the legend."""
    return ["fine", *(i.display for i in BY_RANK if i.flag_column in samples.columns), "dropped"]


def issue_categories(samples: pd.DataFrame, dropped_mask: np.ndarray | None = None) -> pd.Series:
    """One issue name per sample: the flagged issue of highest rank, else "fine"; dropped above all."""
    present = [i for i in BY_RANK if i.flag_column in samples.columns]
    codes = np.zeros(len(samples), dtype=np.int8)
    for slot, issue in enumerate(present, start=1):
        codes[samples[issue.flag_column].fillna(False).to_numpy(dtype=bool)] = slot
    if dropped_mask is not None:
        codes[np.asarray(dropped_mask, dtype=bool)] = len(present) + 1
    return pd.Series(pd.Categorical.from_codes(codes, categories=issue_order(samples)), index=samples.index)


def score_columns(samples: pd.DataFrame) -> list[str]:
    return [c for c in samples.columns if str(c).endswith("_score") and pd.api.types.is_numeric_dtype(samples[c])]


def colour_options(samples: pd.DataFrame, has_labels: bool) -> list[str]:
    opts = ["issue"]
    for c in ("label", "suggested_label"):
        if has_labels and (c in samples.columns or c == "label"):
            opts.append(c)
    opts += score_columns(samples)
    for c in ("slice_id", "split", "cartography_region"):  # cartography_region: analyze(training=...)
        if c in samples.columns and samples[c].notna().any():
            opts.append(c)
    return opts


def colour_column(samples: pd.DataFrame, column: str, current_labels: pd.Series | None,
                  dropped_mask: np.ndarray | None) -> Colour:
    """The colour column ``column`` (an option from :func:`colour_options`) for every sample."""
    if column == "issue":
        shown = issue_categories(samples, dropped_mask)
        return Colour(column, False, list(shown.cat.categories), shown.cat.codes.to_numpy().astype(np.uint8))
    if column == "label" and current_labels is not None:
        codes, names = category_codes(current_labels.reindex(samples.index))
        return Colour(column, False, names, codes)
    if column not in samples.columns:
        raise ValueError(f"Explorer: cannot colour by {column!r}: an.samples has no such column; "
                         f"choose one of {colour_options(samples, current_labels is not None)}")
    col = samples[column]
    if column not in CATEGORICAL_COLUMNS and pd.api.types.is_float_dtype(col):
        return Colour(column, True, [], score_codes(col))
    codes, names = category_codes(col)
    return Colour(column, False, names, codes)
