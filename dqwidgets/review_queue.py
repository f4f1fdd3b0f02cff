"""The review queue: which cards the Explorer puts before a reviewer, in what order, and where it stops.

The default flags are the count that maximises the expected F1 of the calibrated probabilities
(``compute.calibration.expected_f1_count``): the best trade-off for a *list*, not the end of the
errors. Below the flags the same probabilities still say how many real issues are left: the
expected number among the unflagged candidates is the sum of their P(real) (``summary()``'s
``estimated_left``; the Explorer's counts line says "~N likely wrong left below the flags").

The queue is, per calibrated issue type (label issues, then out of distribution), the flagged
samples, most likely first; for label issues it goes on with the unflagged candidates in the same
order (the OOD score is calibrated only where it is high: below its threshold it is a logistic map
of a robust z, whose sum over 2,000 clean samples is ~40, not an expected count), screen by screen
(``SCREEN`` cards), down to the count that maximises the expected **F2** of the same probabilities
(recall weighted twice as much as precision), rounded up to a whole screen.

Why F2. The flags are the expected-F1 optimum: the best list when a missed error and a wrong flag
count the same. The queue past them is for a reviewer who wants the errors found; the standard
recall-oriented measure in retrieval and technology-assisted review is F2 (van Rijsbergen's
F-beta with beta = 2). For calibrated probabilities the expected-F-beta optimum is a threshold on P(real)
at F-beta* / (1 + beta^2) (Lipton, Elkan & Naryanaswamy, "Optimal Thresholding of Classifiers to
Maximize F1 Measure", ECML 2014): F1's flags stop where P(real) falls to F1*/2, F2's queue where it
falls to F2*/5. So the depth follows from the data's own probabilities: a sharp probe (a tail of tiny
probabilities) gets at most a screen past its flags; a weak one (errors spread thinly below the flags)
is followed further, as far as the expected errors still raise F2. beta = 2 is the conventional
choice, not fitted to any case; no other constant enters (SCREEN is the grid's size).

Checked on bench_review_effort's cases and hold-outs (bench/results/bench_review_effort.md). It
replaced a rule with a yield floor (a screen queued while its mean P(real) >= 1/3, or while > 5% of
the expected errors were below and the screen held >= 3 of them), whose floor of one card in eight had
been picked from notebook 01's trade-off; F2 goes less deep on notebook 01's images (fewer decisions,
a little less recall) and deeper on the weak text probe, where the old floor stopped while a screen
still held ~5 real errors in 24 (and cleanlab's longer list found more of them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dqwidgets.compute import calibration
from dqwidgets.issues import BY_NAME

if TYPE_CHECKING:
    from dqwidgets.analysis import Analysis

SCREEN = 24  # cards on one screen of the Explorer's grid: the queue grows by whole screens
BETA = 2.0  # the queue ends at the expected-F(BETA) optimum: recall counted BETA times as much as precision
QUEUED_ISSUES = ("label_issue", "ood")  # calibrated issue types, in the order the queue takes them
PAST_THE_FLAGS = ("label_issue",)  # those whose score is P(real) over every sample: queued past the flags


def candidates(an: Analysis, issue: str) -> np.ndarray:
    """Bool N: the samples ``issue``'s flag rule could flag at some threshold (for label issues, a
    labelled sample whose most likely class is another one; for OOD, any scored sample)."""
    it = BY_NAME[issue]
    scores = an.samples[it.score_column].to_numpy(np.float64)
    # the rule at threshold 0 flags every sample it could flag at any threshold
    return np.asarray(it.flags(an.samples, 0.0, an.context)[it.flag_column], dtype=bool) & np.isfinite(scores)


def expected_left(an: Analysis, issue: str = "label_issue") -> float:
    """The expected number of real ``issue`` samples among its unflagged candidates (sum of P(real));
    NaN for an issue type whose score is no probability below the flags (not in ``PAST_THE_FLAGS``)."""
    if issue not in PAST_THE_FLAGS:
        return float("nan")
    it = BY_NAME[issue]
    s = an.samples
    below = candidates(an, issue) & ~s[it.flag_column].to_numpy(bool)
    return float(np.nansum(s[it.score_column].to_numpy(np.float64)[below]))


def expected_fbeta_count(p: np.ndarray, beta: float = BETA) -> int:
    """The queue's count: ``compute.calibration.expected_fbeta_count`` at the queue's ``BETA``."""
    return calibration.expected_fbeta_count(p, beta)


def stop_after(p_flagged: np.ndarray, p_below: np.ndarray, screen: int = SCREEN, beta: float = BETA) -> int:
    """How many of the unflagged candidates (``p_below``: their P(real), highest first) the queue
    takes after the flagged ones (``p_flagged``): up to the expected-F-beta count over both (module
    docstring), rounded up to whole screens; 0 when that count is within the flags."""
    p_flagged = np.asarray(p_flagged, dtype=np.float64)
    p_below = np.asarray(p_below, dtype=np.float64)
    more = expected_fbeta_count(np.r_[p_flagged, p_below], beta) - len(p_flagged)
    if more <= 0:
        return 0
    return int(min(len(p_below), -(-more // screen) * screen))


def queue_rows(an: Analysis, issue: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, flagged)`` of ``issue``'s queue: its flagged samples, most likely first, then the
    unflagged candidates the stop rule takes, in the same order."""
    it = BY_NAME[issue]
    s = an.samples
    if it.score_column not in s or it.flag_column not in s:
        return np.empty(0, np.int64), np.empty(0, bool)
    p = np.nan_to_num(s[it.score_column].to_numpy(np.float64), nan=-1.0)
    flags = s[it.flag_column].to_numpy(bool)
    order = np.argsort(-p, kind="stable")
    top = order[flags[order]]
    below = order[(candidates(an, issue) & ~flags)[order]]
    more = stop_after(p[top], p[below]) if issue in PAST_THE_FLAGS else 0
    return np.concatenate([top, below[:more]]).astype(np.int64), np.r_[np.ones(len(top), bool), np.zeros(more, bool)]


def review_queue(an: Analysis, issue: str | None = None) -> pd.DataFrame:
    """The Explorer's review order (``an.review_queue()``): one row per card, in the order a reviewer
    meets them; index = sample id. ``issue``: one of ``QUEUED_ISSUES``, or None for all of them in
    turn (a sample already queued for an earlier issue type is not queued again).

    Columns: ``issue``, ``row`` (position in ``an.samples``), ``flagged`` (False: past the default
    flags, queued by the stop rule), ``p_real`` (the calibrated probability that the issue is real),
    ``expected_left`` (expected real issues of this type among the candidates not yet reached after
    this card; NaN for OOD, see the module docstring), ``suggested_label``, ``suggested_action``."""
    names = QUEUED_ISSUES if issue is None else (issue,)
    unknown = [n for n in names if n not in QUEUED_ISSUES]
    if unknown:
        raise ValueError(f"review_queue: issue must be one of {QUEUED_ISSUES} or None, not {unknown[0]!r}")
    s = an.samples
    parts, seen = [], np.zeros(len(s), bool)
    for name in names:
        it = BY_NAME[name]
        rows, flagged = queue_rows(an, name)
        if not len(rows):
            continue
        p = np.nan_to_num(s[it.score_column].to_numpy(np.float64), nan=0.0)
        left = np.full(len(rows), np.nan)
        if name in PAST_THE_FLAGS:
            left = expected_left(an, name) + float(p[rows[flagged]].sum()) - np.cumsum(p[rows])
        keep = ~seen[rows]
        seen[rows] = True
        parts.append(pd.DataFrame({"issue": name, "row": rows[keep], "flagged": flagged[keep], "p_real": p[rows][keep],
                                   "expected_left": np.maximum(left[keep], 0.0)}))
    cols = ["issue", "row", "flagged", "p_real", "expected_left"]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"issue": pd.Series(dtype=object), "row": pd.Series(dtype=np.int64), "flagged": pd.Series(dtype=bool),
         "p_real": pd.Series(dtype=np.float64), "expected_left": pd.Series(dtype=np.float64)})
    out = out[cols]
    for c in ("suggested_label", "suggested_action"):
        if c in s:
            out[c] = s[c].to_numpy(object)[out["row"].to_numpy(np.int64)]
    out.index = s.index[out["row"].to_numpy(np.int64)]
    return out
