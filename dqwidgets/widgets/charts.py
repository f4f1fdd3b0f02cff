"""Summary charts: one histogram per score with its flag threshold.

In the Explorer the histograms are drawn by the bundle (bin counts from here, a few hundred
bytes); moving the handle calls ``an.set_threshold``. :func:`summary_figures` gives the same
charts, per-class counts and slice error rates as plotly FigureWidgets for use outside the
Explorer: plotly's own front end is ~5 MB, which would break the < 1 MB-per-Explorer budget
for saved notebooks if every Explorer carried it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dqwidgets.issues import BY_SCORE

if TYPE_CHECKING:
    from dqwidgets.analysis import Analysis

BINS = 40


def score_histograms(an: Analysis) -> list[dict]:
    """Bin counts, threshold and flagged count for every score that has a threshold."""
    samples = an.samples
    out = []
    for column, threshold in an.thresholds.items():
        values = samples[column].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        lo, hi = 0.0, 1.0
        if values.size and (values.min() < 0 or values.max() > 1):
            lo, hi = float(values.min()), float(values.max())
        counts, _ = np.histogram(values, bins=BINS, range=(lo, hi if hi > lo else lo + 1))
        flag = BY_SCORE[column].flag_column
        flagged = int(samples[flag].sum())
        out.append({"column": column, "flag": flag, "counts": counts.tolist(), "lo": lo, "hi": hi,
                    "threshold": float(threshold), "flagged": flagged})
    return out


def summary_figures(an: Analysis) -> list:
    """Plotly FigureWidgets: score histograms with the threshold line, per-class counts, slice error rates."""
    import plotly.graph_objects as go

    figs = []
    for h in score_histograms(an):
        edges = np.linspace(h["lo"], h["hi"], BINS + 1)
        fig = go.FigureWidget(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=h["counts"], width=edges[1] - edges[0]))
        fig.add_vline(x=h["threshold"], line_color="#d6604d")
        fig.update_layout(title=f"{h['column']}: {h['flagged']:,} flagged", height=240, margin=dict(l=30, r=10, t=40, b=30))
        figs.append(fig)
    labels = an.review.labels()
    if labels.notna().any():
        counts = labels.astype(str).value_counts().sort_index()
        fig = go.FigureWidget(go.Bar(x=counts.index.tolist(), y=counts.to_numpy()))
        fig.update_layout(title="samples per class (after review)", height=240, margin=dict(l=30, r=10, t=40, b=30))
        figs.append(fig)
    slices = an.slices
    if "error_rate" in slices.columns and len(slices):
        top = slices.sort_values("error_rate", ascending=False).head(30)
        names = top["description"].astype(str) if "description" in top.columns else top.index.astype(str)
        fig = go.FigureWidget(go.Bar(x=top["error_rate"].to_numpy(), y=names.tolist(), orientation="h"))
        fig.update_layout(title="error rate per slice", height=360, margin=dict(l=160, r=10, t=40, b=30))
        figs.append(fig)
    return figs
