"""The registry of issue types: one frozen table that every other module reads.

Each :class:`IssueType` says which ``samples`` columns hold its score and its flag, how it is named
on screen, which colour wins on the map when a sample has several issues, how its default
threshold is chosen, the one rule that turns (scores, threshold) into flags, and whether export
drops it by default. ``analyze``, ``Analysis.set_threshold``, ``summary()``, the map palette and
legend, the grid filters, the Explorer's counts line and export's default ``drop`` all iterate
over :data:`ISSUES`; none of them names an issue type.

Adding an issue type = a scoring function in ``dqwidgets/compute/<x>.py``, its step in
``analyze`` that writes the score column, and one entry here (docs/internals.md has a worked
example). The flag rule is the only place flags are made: ``analyze(thresholds=...)`` and
``set_threshold`` both call :meth:`IssueType.flags` with the same :class:`IssueContext`, so setting
a threshold to the value it has changes nothing and moving it away and back restores the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from dqwidgets.compute.duplicates import DEFAULT_THRESHOLD as DUPLICATE_THRESHOLD
from dqwidgets.compute.duplicates import default_threshold as duplicate_default_threshold
from dqwidgets.compute.duplicates import duplicate_groups

if TYPE_CHECKING:
    from dqwidgets.compute.knn import KnnGraph

OOD_THRESHOLD = 0.5  # the OOD score is a logistic map of a robust z with 0.5 at z = compute.ood.Z_FLAG


@dataclass
class IssueContext:
    """What flag rules and default thresholds read besides the score column. Arrays of length N
    cover every sample; the graph and ``duplicate_edges`` cover the valid samples (``valid_pos``)."""

    n: int
    valid_pos: np.ndarray  # int64: the sample of each graph row
    graph: KnnGraph
    label_codes: np.ndarray  # int64 N, -1 = unlabelled
    suggested_codes: np.ndarray  # int64 N, most likely class of the combined probabilities, -1 = none
    label_issue_count: int  # how many label issues to flag by default (see compute.label.find_label_issues)
    duplicate_edges: np.ndarray  # float32 valid x k, closeness of every graph edge (near_duplicate_score)
    content_hashes: np.ndarray | None  # object N, sha1 of the raw bytes, or None
    split_codes: np.ndarray | None  # int64 N, -1 = no split
    ood_default: float | None = None  # default OOD threshold from the foreign-cluster probabilities (compute.ood)
    duplicate_default: float | None = None  # default duplicate threshold (compute.duplicates.near_copy_edges)
    text_signatures: np.ndarray | None = None  # object N, sha1 of the normalised text (embed.signature), or None
    duplicate_pairs: tuple | None = None  # (rows, cols, closeness) of image-signature and table-cell pairs beyond the graph


FlagRule = Callable[[np.ndarray, float, IssueContext], dict]
DefaultThreshold = Callable[[np.ndarray, IssueContext], float]


@dataclass(frozen=True)
class IssueType:
    """One row of the registry. ``score_column`` is None for issues without a score (they have no
    threshold and their flag column comes from input validation)."""

    name: str  # row name in summary(), e.g. "label_issue"
    flag_column: str  # bool column of samples, e.g. "is_label_issue"
    display: str  # legend / colour category, e.g. "label issue"
    rank: int  # map colour: a sample with several issues shows the highest rank (fine = 0)
    filter_key: str  # value of Explorer.filters["issue"]
    filter_text: str  # the grid filter's menu entry
    count_text: str | None  # name in the Explorer's counts line (None = not counted there)
    export_drops: bool  # in export's default ``drop``
    score_column: str | None = None
    default_threshold: DefaultThreshold | None = None  # (full-length scores, context) -> threshold
    rule: FlagRule | None = None  # (full-length scores, threshold, context) -> {column: full-length array}
    detail: Callable[[pd.DataFrame], str] | None = None  # extra words for summary()
    requires: str | None = None  # the analyze() argument without which this issue is absent, e.g. "training"
    calibrated: bool = False  # the score is a calibrated probability: summary() estimates the flags' precision

    def flags(self, samples: pd.DataFrame, threshold: float, context: IssueContext) -> dict:
        """The columns this issue's rule sets at ``threshold`` (the flag column, and any it derives)."""
        scores = samples[self.score_column].to_numpy(dtype=np.float64)
        return self.rule(scores, float(threshold), context)


def at_least(scores: np.ndarray, threshold: float) -> np.ndarray:
    """``scores >= threshold``; missing scores are never flagged."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(scores, nan=-np.inf) >= threshold


def score_at_count(scores: np.ndarray, count: int) -> float:
    """The threshold at which ``scores >= threshold`` keeps the ``count`` highest (more on ties);
    1.0 when ``count`` is 0 or there are no scores."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if count <= 0 or len(scores) == 0:
        return 1.0
    count = min(int(count), len(scores))
    return float(np.partition(scores, len(scores) - count)[len(scores) - count])


# ------------------------------------------------------------------------------- label issues
def _label_candidates(scores: np.ndarray, ctx: IssueContext) -> np.ndarray:
    """Labelled samples for which the data supports another label than the given one."""
    return np.isfinite(scores) & (ctx.label_codes >= 0) & (ctx.suggested_codes >= 0) & \
        (ctx.suggested_codes != ctx.label_codes)


def _label_rule(scores, threshold, ctx):
    return {"is_label_issue": _label_candidates(scores, ctx) & at_least(scores, threshold)}


def _label_default(scores, ctx):
    # the expected-F1 count of the calibrated probabilities that the label is wrong
    # (compute.label.find_label_issues, compute.calibration.expected_f1_count)
    return score_at_count(scores[_label_candidates(scores, ctx)], ctx.label_issue_count)


# ------------------------------------------------------------------------------- the others
def _ood_default(scores, ctx):
    return OOD_THRESHOLD if ctx.ood_default is None else ctx.ood_default


def _ood_rule(scores, threshold, ctx):
    return {"is_ood": at_least(scores, threshold)}


def _duplicate_default(scores, ctx):
    # from the distance distribution: near copies are far below the typical neighbour distance
    if ctx.duplicate_default is not None:
        return ctx.duplicate_default
    return duplicate_default_threshold(ctx.duplicate_edges[:, 0]) if len(ctx.duplicate_edges) else DUPLICATE_THRESHOLD


def _duplicate_rule(scores, threshold, ctx):
    # graph edges (embedding closeness, raised by image signatures), exact bytes, normalised texts
    group, is_dup = duplicate_groups(ctx.graph.indices, ctx.duplicate_edges, threshold, ctx.content_hashes,
                                     n_total=ctx.n, node_ids=ctx.valid_pos, more_hashes=(ctx.text_signatures,),
                                     extra_pairs=ctx.duplicate_pairs)
    return {"duplicate_group": group, "is_duplicate": is_dup}


def _duplicate_detail(samples: pd.DataFrame) -> str:
    groups = samples.loc[samples["duplicate_group"] >= 0, "duplicate_group"].nunique()
    return f"{int(groups)} groups"


def _invalid_detail(samples: pd.DataFrame) -> str:
    if "invalid_reason" not in samples:
        return ""
    reasons = samples.loc[samples["invalid_reason"] != "", "invalid_reason"].value_counts()
    return "; ".join(f"{k}: {v}" for k, v in reasons.items())


def _low_aum_rule(scores, threshold, ctx):
    # aum_score = σ(cut − AUM): 0.5 is the AUM cut of dqwidgets.compute.aum (threshold samples or AUM < 0)
    return {"is_low_aum": at_least(scores, threshold)}


ISSUES: tuple[IssueType, ...] = (
    IssueType("label_issue", "is_label_issue", "label issue", rank=3, filter_key="label",
              filter_text="only label issues", count_text="label issues", export_drops=False,
              score_column="label_issue_score", default_threshold=_label_default, rule=_label_rule,
              calibrated=True),
    IssueType("ood", "is_ood", "out of distribution", rank=2, filter_key="ood",
              filter_text="only out of distribution", count_text="OOD", export_drops=True,
              score_column="ood_score", default_threshold=_ood_default, rule=_ood_rule, calibrated=True),
    IssueType("duplicate", "is_duplicate", "duplicate", rank=1, filter_key="duplicate",
              filter_text="only duplicates", count_text="duplicates", export_drops=True,
              score_column="duplicate_score", default_threshold=_duplicate_default,
              rule=_duplicate_rule, detail=_duplicate_detail),
    IssueType("invalid", "is_invalid", "invalid", rank=4, filter_key="invalid",
              filter_text="only invalid samples", count_text=None, export_drops=False, detail=_invalid_detail),
    # from the user's training run (dq.analyze(ds, training=rec)); absent otherwise
    IssueType("low_aum", "is_low_aum", "low AUM (training)", rank=5, filter_key="low_aum",
              filter_text="only low AUM (training run)", count_text="low AUM", export_drops=False,
              score_column="aum_score", default_threshold=lambda scores, ctx: 0.5, rule=_low_aum_rule,
              requires="training"),
)

BY_NAME = MappingProxyType({i.name: i for i in ISSUES})
BY_SCORE = MappingProxyType({i.score_column: i for i in ISSUES if i.score_column is not None})
FLAG_COLUMNS = tuple(i.flag_column for i in ISSUES)  # the issue flags (validity flags: analysis_input)
EXPORT_DROPS = tuple(i.flag_column for i in ISSUES if i.export_drops)
BY_RANK = tuple(sorted(ISSUES, key=lambda i: i.rank))


def _check(issues) -> None:
    for field in ("name", "flag_column", "display", "rank", "filter_key"):
        values = [getattr(i, field) for i in issues]
        if len(set(values)) != len(values):
            raise ValueError(f"dqwidgets.issues: two issue types share a {field}: {values}")
    for i in issues:
        if (i.score_column is None) != (i.rule is None) or (i.rule is None) != (i.default_threshold is None):
            raise ValueError(f"dqwidgets.issues: {i.name} needs score_column, rule and default_threshold together")
        if i.rank < 1:
            raise ValueError(f"dqwidgets.issues: {i.name}: rank 0 is 'fine'; ranks start at 1")


_check(ISSUES)
