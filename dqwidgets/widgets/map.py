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


# ---------------------------------------------------------------------------------------------- large maps
MAP_MAX_POINTS = 3_000_000  # above this many samples the map draws a density-first sample


def density_first_sample(x, y, flagged, cap: int, seed: int = 0, bins: int | None = None) -> np.ndarray:
    """Rows the map draws when there are more than ``cap`` points: every flagged sample, and of the
    others at most ``q`` per cell of a ``bins`` x ``bins`` grid over the map (by default about 4 drawn
    points a cell), with ``q`` the largest
    quota that keeps the total within ``cap`` (what is left goes to random cells' next point). Dense
    regions are thinned, sparse ones (where the outliers are) kept whole. Sorted row numbers; every row when there are ``cap`` or fewer."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    n = len(x)
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    if bins is None:  # about 4 drawn points per cell on average (16..512 cells a side)
        bins = int(np.clip((cap / 4) ** 0.5, 16, 512))
    rest = np.flatnonzero(~flagged)
    budget = max(0, int(cap) - int(flagged.sum()))
    cells = _grid_cells(x[rest], y[rest], bins)
    counts = np.bincount(cells, minlength=bins * bins + 1)
    lo, hi = 0, int(counts.max())  # the largest quota q with sum(min(counts, q)) <= budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    # a random rank inside each cell: the first q of each cell are kept
    order = np.lexsort((np.random.default_rng(seed).random(len(rest)), cells))
    sorted_cells = cells[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(len(order)) - starts
    keep = order[rank < lo]
    # the budget left after q per cell goes to a random share of the cells' (q+1)-th points
    nxt = order[rank == lo]
    extra = budget - len(keep)
    if extra > 0 and len(nxt):
        keep = np.concatenate([keep, np.random.default_rng(seed + 1).permutation(nxt)[:extra]])
    keep = rest[keep]
    return np.sort(np.concatenate([np.flatnonzero(flagged), keep]).astype(np.int64))


def _grid_cells(x: np.ndarray, y: np.ndarray, bins: int) -> np.ndarray:
    """Grid cell of each point (missing positions share one extra cell)."""
    ok = np.isfinite(x) & np.isfinite(y)
    cells = np.full(len(x), bins * bins, dtype=np.int64)
    if ok.any():
        x0, x1, y0, y1 = x[ok].min(), x[ok].max(), y[ok].min(), y[ok].max()
        cx = np.clip(((x[ok] - x0) / max(x1 - x0, 1e-12) * bins).astype(np.int64), 0, bins - 1)
        cy = np.clip(((y[ok] - y0) / max(y1 - y0, 1e-12) * bins).astype(np.int64), 0, bins - 1)
        cells[ok] = cy * bins + cx
    return cells


def rows_in_polygon(x, y, polygon, block: int = 1 << 20) -> np.ndarray:
    """Every row whose (x, y) lies inside ``polygon`` (flat [x0, y0, x1, y1, ...] or an M x 2 array, in
    the same coordinates as x and y; even-odd rule, as the browser's lasso): the exact selection of a
    lasso over all N samples, whether or not the map drew them. Sorted row numbers."""
    P = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(P) < 3:
        return np.zeros(0, dtype=np.int64)
    (bx0, by0), (bx1, by1) = P.min(0), P.max(0)
    xi, yi = P[:, 0], P[:, 1]
    xj, yj = np.roll(xi, 1), np.roll(yi, 1)
    out = []
    for s in range(0, len(x), block):
        px, py = x[s:s + block], y[s:s + block]
        cand = np.flatnonzero((px >= bx0) & (px <= bx1) & (py >= by0) & (py <= by1))
        cx, cy = px[cand], py[cand]
        inside = np.zeros(len(cand), dtype=bool)
        for a, b, c, d in zip(xi, yi, xj, yj):  # one pass per edge over the candidates
            crosses = (b > cy) != (d > cy)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = (c - a) * (cy - b) / (d - b) + a
            inside ^= crosses & (cx < at)
        out.append(cand[inside] + s)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
