"""The tables of an Analysis beside ``samples``: slices, spurious associations, drift tests and the
summary. They wrap the numpy results of ``compute.slices``, ``compute.spurious`` and
``compute.drift`` in pandas frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqwidgets.compute.drift import knn_group_test, knn_order_test
from dqwidgets.compute.duplicates import cross_split_groups
from dqwidgets.compute.slices import graph_slices, slice_table
from dqwidgets.compute.spurious import spurious_associations
from dqwidgets import review_queue
from dqwidgets.issues import ISSUES

SUMMARY_COLUMNS = ["issue", "count", "share", "threshold", "estimated_precision", "estimated_real", "estimated_left",
                   "review_queue", "statistic", "p_value", "detail"]


def slice_frame(neighbors, label_codes, probs, classes, attributes, seed) -> tuple[np.ndarray, pd.DataFrame]:
    """Slice id of every graph node, and the slice table (one row per slice, index = slice id)."""
    slice_id = np.asarray(graph_slices(neighbors, seed=seed), dtype=np.int64)
    pred = probs.argmax(1).astype(np.int64) if probs is not None else np.full(len(slice_id), -1, np.int64)
    table = pd.DataFrame(slice_table(slice_id, label_codes, pred, attributes, list(classes)))
    if "slice_id" in table.columns:
        table = table.set_index("slice_id", drop=False)
    return slice_id, table


def spurious_frame(attributes, label_codes, classes, correct) -> pd.DataFrame:
    """Every (attribute, value, label) association, strongest first; empty without attributes/labels."""
    if not attributes or (label_codes >= 0).sum() == 0:
        return pd.DataFrame()
    if correct is None:
        correct = np.ones(len(label_codes), dtype=bool)
    return pd.DataFrame(spurious_associations(attributes, label_codes, list(classes), correct))


def drift_tests(neighbors, split_codes, seed) -> dict:
    """kNN two-sample test between splits ("split", when there are two or more) and the row-order
    test ("order"), each (statistic, p-value)."""
    out = {"order": tuple(map(float, knn_order_test(neighbors, seed=seed)))}
    if split_codes is not None and len(np.unique(split_codes[split_codes >= 0])) >= 2:
        out["split"] = tuple(map(float, knn_group_test(neighbors, split_codes, seed=seed)))
    return out


def summary_table(an) -> pd.DataFrame:
    s, n = an.samples, len(an.samples)
    rows = []

    def count_row(issue, column, **more):
        c = int(s[column].sum())
        rows.append({"issue": issue, "count": c, "share": c / n if n else 0.0, **more})

    for issue in ISSUES:
        if issue.flag_column in s:
            more = {}
            if issue.calibrated and issue.score_column in s:  # mean / sum of P(real) over the flags
                p = s[issue.score_column].to_numpy(dtype=np.float64)[s[issue.flag_column].to_numpy(dtype=bool)]
                p = p[np.isfinite(p)]
                more = {"estimated_precision": float(p.mean()) if len(p) else np.nan,
                        "estimated_real": float(p.sum())}
                if issue.name in review_queue.QUEUED_ISSUES:  # below the flags, and how far the queue goes
                    more["estimated_left"] = review_queue.expected_left(an, issue.name)
                    more["review_queue"] = len(review_queue.queue_rows(an, issue.name)[0])
            count_row(issue.name, issue.flag_column, threshold=an.thresholds.get(issue.score_column, np.nan),
                      detail=issue.detail(s) if issue.detail else "", **more)
    for column in ("is_unreadable", "is_empty", "is_unlabeled"):
        if column in s and s[column].any():
            count_row(column[3:], column, detail="left out of the graph")
    from dqwidgets.accuracy import accuracy_summary_rows

    rows += accuracy_summary_rows(an)  # estimated accuracy (ATC) per split
    review = an._review  # only once the journal is open (it was, or a review action was taken)
    if review is not None:
        relabelled, dropped, ok = len(review.relabelled()), len(review.dropped()), len(review.marked_ok())
        rows.append({"issue": "reviewed", "count": relabelled + dropped + ok,
                     "share": (relabelled + dropped + ok) / n if n else 0.0,
                     "detail": f"{relabelled} relabelled, {dropped} dropped, {ok} marked ok (review journal)"})
    split_codes = an.context.split_codes
    if split_codes is not None:
        crossing = cross_split_groups(s["duplicate_group"].to_numpy(), split_codes)
        members = int(s["duplicate_group"].isin(crossing).sum())
        rows.append({"issue": "cross_split_duplicate", "count": members, "share": members / n if n else 0.0,
                     "detail": f"{len(crossing)} duplicate groups span more than one split (train/test leakage)"})
    if "split" in an.drift:
        rows.append({"issue": "split_drift", "statistic": an.drift["split"][0], "p_value": an.drift["split"][1],
                     "detail": "kNN two-sample test between splits (small p = the splits differ)"})
    if "order" in an.drift:
        rows.append({"issue": "non_iid_order", "statistic": an.drift["order"][0], "p_value": an.drift["order"][1],
                     "detail": "kNN test of neighbours along the row order (small p = rows are not shuffled)"})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out["count"] = out["count"].astype("Int64")  # NaN for the test rows, which count nothing
    return out.set_index("issue", drop=False)
