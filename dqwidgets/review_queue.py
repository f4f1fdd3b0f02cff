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
(``SCREEN`` cards), for as long as the next screen is still worth a look. A screen is worth it while
either

- **its cards are likely wrong**: the mean P(real) of the screen is at least ``MIN_SCREEN_YIELD``
  (a screen where about one card in three is wrong: below that a reviewer spends more than two
  decisions per error he finds there); or
- **a large share of the expected errors is still below it**: the expected number left after the
  screens already queued is more than ``1 - TARGET_RECALL`` of all the expected errors (flagged and
  not) and the screen still holds ``MIN_SCREEN_EXPECTED`` expected errors (one card in eight), so a
  reviewer aiming to find ``TARGET_RECALL`` of the errors is led on while each screen still pays
  (on a sharp probe the tail's probabilities are tiny and the second clause stops it at once; on a
  weak one the errors are spread thinly and the queue follows them until a screen holds too few).

How the constants were chosen (offline, on this session's analyses of bench_review_effort's three
cases, a reviewer cost model without the slice/OOD/duplicate steps): the queue's depth past the flags
trades errors found for decisions, and on notebook 01's images (a probe that confuses Shirt /
T-shirt / Pullover / Coat) a screen floor of 0.15 / 0.13 / 0.12 expected errors per card found 0.888 /
0.904 / 0.911 of the label errors at ~1.21 / 1.27 / 1.30 decisions per error; the texts (a weak
binary probe) pay for every step down (0.405 -> 0.492 of their errors at 2.28 -> 2.62), the digits
table (a sharp probe) gets no card past its flags at any of them. One card in eight sits inside that
range; it was picked from notebook 01's trade-off, so it is checked on the other cases, not derived.

Both clauses read only the calibrated probabilities, so the queue's length follows from the data
and from the same estimate the flags' precision comes from; nothing here knows a dataset. The rule
is the technology-assisted-review "target recall" stopping rule (Cormack & Grossman, "Engineering
Quality and Reliability in Technology-Assisted Review", SIGIR 2016) with the recall estimated from
the calibrated probabilities instead of a control sample, plus a yield floor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dqwidgets.issues import BY_NAME

if TYPE_CHECKING:
    from dqwidgets.analysis import Analysis

SCREEN = 24  # cards on one screen of the Explorer's grid: the queue grows by whole screens
MIN_SCREEN_YIELD = 1 / 3  # a screen whose cards are on average this likely wrong is always queued
TARGET_RECALL = 0.95  # ... and past that while more than 1 - this of the expected errors are below
MIN_SCREEN_EXPECTED = 3.0  # ... and the screen holds at least this many expected errors (1 card in 8)
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


def stop_after(p_flagged: np.ndarray, p_below: np.ndarray, screen: int = SCREEN,
               min_yield: float = MIN_SCREEN_YIELD, target_recall: float = TARGET_RECALL,
               min_expected: float = MIN_SCREEN_EXPECTED) -> int:
    """How many of the unflagged candidates (``p_below``: their P(real), highest first) the queue
    takes after the flagged ones (``p_flagged``), by the rule of the module docstring; whole screens."""
    p_below = np.nan_to_num(np.asarray(p_below, dtype=np.float64), nan=0.0)
    total = float(np.nansum(p_flagged)) + float(p_below.sum())
    left = float(p_below.sum())
    taken = 0
    while taken < len(p_below):
        page = p_below[taken: taken + screen]
        expected = float(page.sum())
        worth = expected / len(page) >= min_yield or (left > (1.0 - target_recall) * total
                                                       and expected >= min_expected)
        if not worth:
            break
        taken += len(page)
        left -= expected
    return taken


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
