"""The tables of an Analysis beside ``samples``: slices, spurious associations, drift tests and the
summary. They wrap the numpy results of ``compute.slices``, ``compute.spurious`` and
``compute.drift`` in pandas frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqwidgets.compute.duplicates import cross_split_groups

SUMMARY_COLUMNS = ["issue", "count", "share", "threshold", "statistic", "p_value", "detail"]


def compute_slices(neighbors, label_codes, probs, classes, attributes, seed) -> tuple[np.ndarray, pd.DataFrame]:
    """Slice id of every graph node, and the slice table (one row per slice)."""
    from dqwidgets.compute.slices import graph_slices

    slice_id = np.asarray(graph_slices(neighbors, seed=seed), dtype=np.int64)
    pred = probs.argmax(1).astype(np.int64) if probs is not None else np.full(len(slice_id), -1, np.int64)
    try:
        from dqwidgets.compute.slices import slice_table
    except ImportError:
        return slice_id, _basic_slice_table(slice_id, label_codes, pred, classes)
    table = pd.DataFrame(slice_table(slice_id, label_codes, pred, attributes, list(classes)))
    if "slice_id" in table.columns:
        table = table.set_index("slice_id", drop=False)
    return slice_id, table


def _basic_slice_table(slice_id, label_codes, pred, classes) -> pd.DataFrame:
    """Size, probe error rate and dominant label per slice (used until compute.slices.slice_table exists)."""
    rows = []
    names = np.asarray(list(classes) + [None], dtype=object)
    for s in np.unique(slice_id[slice_id >= 0]):
        m = slice_id == s
        lab = label_codes[m]
        has = lab >= 0
        dom = np.bincount(lab[has]).argmax() if has.any() else -1
        err = float((pred[m][has] != lab[has]).mean()) if has.any() and (pred >= 0).any() else np.nan
        rows.append({"slice_id": int(s), "size": int(m.sum()), "error_rate": err, "dominant_label": names[dom],
                     "dominant_share": float((lab[has] == dom).mean()) if has.any() else np.nan})
    table = pd.DataFrame(rows, columns=["slice_id", "size", "error_rate", "dominant_label", "dominant_share"])
    return table.set_index("slice_id", drop=False)


def compute_spurious(attributes, label_codes, classes, correct) -> pd.DataFrame:
    """Every (attribute, value, label) association, strongest first; empty without attributes/labels."""
    if not attributes or (label_codes >= 0).sum() == 0:
        return pd.DataFrame()
    try:
        from dqwidgets.compute.spurious import spurious_associations
    except ImportError:
        return pd.DataFrame()
    if correct is None:
        correct = np.ones(len(label_codes), dtype=bool)
    return pd.DataFrame(spurious_associations(attributes, label_codes, list(classes), correct))


def compute_drift(neighbors, split_codes, seed) -> dict:
    """kNN two-sample test between splits and the row-order test; {} when compute.drift is missing."""
    try:
        from dqwidgets.compute.drift import knn_group_test, knn_order_test
    except ImportError:
        return {}
    out = {"order": tuple(map(float, knn_order_test(neighbors, seed=seed)))}
    if split_codes is not None and len(np.unique(split_codes[split_codes >= 0])) >= 2:
        out["split"] = tuple(map(float, knn_group_test(neighbors, split_codes, seed=seed)))
    return out


def summary_table(an) -> pd.DataFrame:
    s, n = an.samples, len(an.samples)
    th = an.thresholds
    rows = []

    def flag_row(issue, column, threshold_of, detail=""):
        if column in s:
            c = int(s[column].sum())
            rows.append({"issue": issue, "count": c, "share": c / n if n else 0.0,
                         "threshold": th.get(threshold_of, np.nan), "detail": detail})

    flag_row("label_issue", "is_label_issue", "label_issue_score")
    flag_row("ood", "is_ood", "ood_score")
    groups = int(s.loc[s["duplicate_group"] >= 0, "duplicate_group"].nunique())
    flag_row("duplicate", "is_duplicate", "duplicate_score", f"{groups} groups")
    flag_row("invalid", "is_invalid", None, _reasons(s))
    for column in ("is_unreadable", "is_empty", "is_unlabeled"):
        if column in s and s[column].any():
            flag_row(column[3:], column, None, "left out of the graph")
    review = an._review  # only once the journal is open (it was, or a review action was taken)
    if review is not None:
        relabelled, dropped, ok = len(review.relabelled()), len(review.dropped()), len(review.marked_ok())
        rows.append({"issue": "reviewed", "count": relabelled + dropped + ok,
                     "share": (relabelled + dropped + ok) / n if n else 0.0,
                     "detail": f"{relabelled} relabelled, {dropped} dropped, {ok} marked ok (review journal)"})
    split_codes = an.info.get("split_codes")
    if split_codes is not None:
        crossing = cross_split_groups(s["duplicate_group"].to_numpy(), split_codes)
        members = int(s["duplicate_group"].isin(crossing).sum())
        rows.append({"issue": "cross_split_duplicate", "count": members, "share": members / n if n else 0.0,
                     "detail": f"{len(crossing)} duplicate groups span more than one split (train/test leakage)"})
    drift = an.info.get("drift") or {}
    if "split" in drift:
        rows.append({"issue": "split_drift", "statistic": drift["split"][0], "p_value": drift["split"][1],
                     "detail": "kNN two-sample test between splits (small p = the splits differ)"})
    if "order" in drift:
        rows.append({"issue": "non_iid_order", "statistic": drift["order"][0], "p_value": drift["order"][1],
                     "detail": "kNN test of neighbours along the row order (small p = rows are not shuffled)"})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out["count"] = out["count"].astype("Int64")  # NaN for the test rows, which count nothing
    return out.set_index("issue", drop=False)


def _reasons(s: pd.DataFrame) -> str:
    if "invalid_reason" not in s:
        return ""
    r = s.loc[s["invalid_reason"] != "", "invalid_reason"].value_counts()
    return "; ".join(f"{k}: {v}" for k, v in r.items())
