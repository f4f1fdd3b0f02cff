"""Why is a sample flagged? ``an.explain(id)``: the evidence behind every flag of one sample.

Everything here is read from what :func:`dqwidgets.analyze` already computed: the component
scores and flags in ``an.samples``, the sample's neighbours in the analysis' one kNN graph
(``an.graph``, whose rows are the valid samples), the probe's class probabilities, the duplicate
group and the slice with its row of ``an.slices``. Nothing is recomputed.

:class:`Evidence` prints as plain text, renders as escaped HTML in a notebook and turns into a
JSON-safe dict (``to_dict``), which is what the Explorer's evidence panel shows.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dqwidgets.issues import ISSUES

if TYPE_CHECKING:
    from dqwidgets.analysis import Analysis

TOP_CLASSES = 3
CALIBRATED = "calibrated: P(true class | x, given label)"  # an.calibrated_probs, the label model's posterior
UNCALIBRATED = "uncalibrated: an.pred_probs"  # when the analysis has no calibrated probabilities
_SLICE_FIELDS = ("size", "error_rate", "dominant_label", "dominant_share", "description", "atc_accuracy")


def _plain(value) -> Any:
    """A JSON-safe scalar: numpy unwrapped, NaN / NA as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Neighbour:
    id: Any
    label: Any  # current label (relabels in the journal applied), None when unlabelled
    distance: float  # in the graph's metric (an.graph.metric)
    flagged: bool  # any issue flag


@dataclass
class Evidence:
    """The evidence behind one sample's flags (see :func:`explain`)."""

    id: Any
    row: int  # position in an.samples
    valid: bool  # in the analysis (False: unreadable, empty or otherwise left out)
    reason: str | None  # why it was left out (an.samples.invalid_reason), None when valid
    label: Any  # given label
    current_label: Any  # after the review journal's relabels
    review_status: str | None  # "dropped", "ok" or None
    flags: list[str]  # issue names flagged, e.g. ["label_issue", "ood"]
    scores: dict[str, float | None]  # every score column: label_issue_score, ood_*_score, duplicate_score, ...
    thresholds: dict[str, float]  # score column -> the threshold its flag uses
    suggested_label: Any
    suggested_action: str | None  # "relabel", "drop" or None (keep)
    top_classes: list[tuple[Any, float]]  # the probe's most likely classes, most likely first
    probability_source: str | None  # which probabilities top_classes are: CALIBRATED or UNCALIBRATED
    neighbours: list[Neighbour]  # from an.graph, nearest first
    metric: str | None  # the graph's distance
    duplicate_group: int | None  # -1 / None: in no group
    duplicates: list  # ids of the other members of its duplicate group
    slice_id: int | None
    slice: dict[str, Any] = field(default_factory=dict)  # the slice's row of an.slices (what marks it)

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict:
        """JSON-safe dict (ids and labels as they are: strings or numbers)."""
        return {
            "id": _plain(self.id), "row": self.row, "valid": self.valid, "reason": self.reason,
            "label": _plain(self.label), "current_label": _plain(self.current_label),
            "review_status": self.review_status, "flags": list(self.flags),
            "scores": {k: _plain(v) for k, v in self.scores.items()},
            "thresholds": {k: _plain(v) for k, v in self.thresholds.items()},
            "suggested_label": _plain(self.suggested_label), "suggested_action": self.suggested_action,
            "top_classes": [[_plain(c), _plain(p)] for c, p in self.top_classes],
            "probability_source": self.probability_source,
            "neighbours": [{"id": _plain(n.id), "label": _plain(n.label), "distance": _plain(n.distance),
                            "flagged": n.flagged} for n in self.neighbours],
            "metric": self.metric, "duplicate_group": self.duplicate_group,
            "duplicates": [_plain(i) for i in self.duplicates], "slice_id": self.slice_id,
            "slice": {k: _plain(v) for k, v in self.slice.items()},
        }

    def lines(self) -> list[tuple[str, str]]:
        """(heading, text) pairs: what ``__repr__`` and the HTML show, in that order."""
        out = [("sample", f"{self.id!r} (row {self.row})")]
        if not self.valid:
            out.append(("left out", self.reason or "not in the analysis"))
        label = f"{self.label!r}" + (f" (now {self.current_label!r})" if self.current_label != self.label else "")
        out.append(("label", label + (f"; review: {self.review_status}" if self.review_status else "")))
        out.append(("flagged as", ", ".join(self.flags) if self.flags else "nothing"))
        if self.scores:
            out.append(("scores", ", ".join(
                f"{k} {_fmt(v)}" + (f" (flag at {_fmt(self.thresholds[k])})" if k in self.thresholds else "")
                for k, v in self.scores.items())))
        action = self.suggested_action or "keep"
        suggested = "no class fits" if self.suggested_label is None else repr(self.suggested_label)
        out.append(("suggestion", f"{action}; suggested label {suggested}"))
        if self.top_classes:
            out.append((f"probe ({self.probability_source})",
                        ", ".join(f"{c!r} {p:.2f}" for c, p in self.top_classes)))
        if self.neighbours:
            out.append((f"neighbours ({self.metric})", ", ".join(
                f"{n.id!r} [{n.label!r}] {n.distance:.3f}" for n in self.neighbours)))
        if self.duplicates:
            out.append((f"duplicate group {self.duplicate_group}", ", ".join(repr(i) for i in self.duplicates)))
        if self.slice_id is not None:
            marks = self.slice.get("description") or "no attribute stands out"
            bits = [f"{self.slice.get('size')} samples"] if self.slice.get("size") is not None else []
            if self.slice.get("dominant_label") is not None:
                bits.append(f"mostly {self.slice['dominant_label']!r}")
            if _plain(self.slice.get("error_rate")) is not None:
                bits.append(f"error rate {self.slice['error_rate']:.2f}")
            out.append((f"slice {self.slice_id}", "; ".join(bits + [f"marked by: {marks}"])))
        return out

    def __repr__(self) -> str:
        width = max(len(h) for h, _ in self.lines())
        return "\n".join(["<dq.Evidence>"] + [f"  {h.ljust(width)}  {t}" for h, t in self.lines()])

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(h)}</th>"
                       f"<td style='text-align:left'>{html.escape(t)}</td></tr>" for h, t in self.lines())
        return f"<table class='dq-evidence'>{rows}</table>"


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


# --------------------------------------------------------------------------------------------- building
def explain(an: Analysis, sample_id) -> Evidence:
    """The evidence behind ``sample_id``'s flags; ValueError for an id that is not in ``an.samples``."""
    samples = an.samples
    row = _row_of(samples.index, sample_id)
    s = samples.iloc[row]
    valid = bool(an.valid[row])
    reason = None
    if not valid:
        reason = str(s.get("invalid_reason") or "") or "left out of the analysis"
    labels = _current_labels(an)
    scores = {c: _plain(s[c]) for c in _score_columns(samples)}
    flags = [i.name for i in ISSUES if i.flag_column in samples.columns and bool(s[i.flag_column])]
    group = _plain(s.get("duplicate_group"))
    group = int(group) if group is not None else None
    duplicates = []
    if group is not None and group >= 0:
        members = samples.index[samples["duplicate_group"].to_numpy() == group]
        duplicates = [i for i in members.tolist() if i != samples.index[row]]
    slice_id = _plain(s.get("slice_id"))
    slice_id = int(slice_id) if slice_id is not None and int(slice_id) >= 0 else None
    top, source = _top_classes(an, row)
    suggested = _plain(s.get("suggested_label"))
    return Evidence(
        id=samples.index[row], row=row, valid=valid, reason=reason,
        label=_plain(s.get("given_label", s.get("label"))), current_label=_plain(labels.iloc[row]) if labels is not None else None,
        review_status=_plain(s.get("review_status")), flags=flags, scores=scores,
        thresholds={c: float(t) for c, t in an.thresholds.items() if c in scores},
        suggested_label=suggested, suggested_action=_suggested_action(s, flags, suggested),
        top_classes=top, probability_source=source, neighbours=_neighbours(an, row, labels) if valid else [],
        metric=an.graph.metric if valid else None, duplicate_group=group, duplicates=duplicates,
        slice_id=slice_id, slice=_slice_row(an.slices, slice_id))


def _row_of(index: pd.Index, sample_id) -> int:
    try:
        loc = index.get_loc(sample_id)
    except (KeyError, TypeError, pd.errors.InvalidIndexError):
        loc = None
    if not isinstance(loc, (int, np.integer)):
        # a string id typed as a number (or the reverse): say which ids exist
        example = index[:3].tolist()
        raise ValueError(f"explain: {sample_id!r} is not a sample id of this analysis; ids are an.samples.index, "
                         f"e.g. {example}") from None
    return int(loc)


def _score_columns(samples: pd.DataFrame) -> list[str]:
    main = [i.score_column for i in ISSUES if i.score_column is not None and i.score_column in samples.columns]
    parts = sorted(c for c in samples.columns if isinstance(c, str) and c.startswith("ood_") and c.endswith("_score") and c not in main)
    return main + parts


def _current_labels(an: Analysis) -> pd.Series | None:
    samples = an.samples
    for column in ("current_label", "label"):
        if column in samples.columns:
            return samples[column]
    return None


def _flagged(samples: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Whether each of ``rows`` has any issue flag (read for those rows only)."""
    cols = [i.flag_column for i in ISSUES if i.flag_column in samples.columns]
    if not cols:
        return np.zeros(len(rows), dtype=bool)
    return samples[cols].iloc[rows].fillna(False).to_numpy(dtype=bool).any(axis=1)


def _neighbours(an: Analysis, row: int, labels: pd.Series | None) -> list[Neighbour]:
    """The sample's row of the analysis' kNN graph, as sample ids (the graph covers the valid rows)."""
    valid_pos = np.flatnonzero(an.valid)
    at = int(np.searchsorted(valid_pos, row))
    rows = valid_pos[an.graph.indices[at]]
    dist = an.graph.distances[at]
    flagged = _flagged(an.samples, rows)
    ids = an.samples.index
    return [Neighbour(id=_plain(ids[r]), label=_plain(labels.iloc[r]) if labels is not None else None,
                      distance=float(d), flagged=bool(f)) for r, d, f in zip(rows.tolist(), dist.tolist(), flagged)]


def _top_classes(an: Analysis, row: int) -> tuple[list[tuple[Any, float]], str | None]:
    """The most likely classes: calibrated probabilities when the analysis has them, else pred_probs."""
    calibrated = getattr(an, "calibrated_probs", None)
    probs, source = (calibrated, CALIBRATED) if calibrated is not None else (an.pred_probs, UNCALIBRATED)
    if probs is None or not len(an.classes):
        return [], None
    p = np.asarray(probs[row], dtype=np.float64)
    if not np.isfinite(p).any():
        return [], None
    order = np.argsort(-np.nan_to_num(p, nan=-1.0), kind="stable")[:TOP_CLASSES]
    return [(_plain(an.classes[k]), float(p[k])) for k in order], source


def _suggested_action(s: pd.Series, flags: list[str], suggested) -> str | None:
    """The analysis' own suggested_action when it has one; else relabel a label issue, drop an
    out-of-distribution sample or a duplicate, keep the rest (None)."""
    if "suggested_action" in s.index:
        action = _plain(s["suggested_action"])
        return None if action in (None, "", "keep") else str(action)
    if "label_issue" in flags and suggested is not None:
        return "relabel"
    if "ood" in flags or "duplicate" in flags or ("label_issue" in flags and suggested is None):
        return "drop"
    return None


def _slice_row(slices: pd.DataFrame, slice_id: int | None) -> dict:
    if slice_id is None or slices is None or not len(slices) or slice_id not in slices.index:
        return {}
    row = slices.loc[slice_id]
    return {k: _plain(row[k]) for k in _SLICE_FIELDS if k in row.index}
