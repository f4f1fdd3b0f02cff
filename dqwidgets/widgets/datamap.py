"""The data map of dataset cartography (Swayamdipta et al., EMNLP 2020): variability (x) against
confidence (y) of every sample the user's training run saw, coloured by correctness, as a plotly
FigureWidget linked to an Explorer's selection both ways.

``fig = data_map(explorer)``: a lasso or box on the figure selects those samples in the Explorer
(map, grid and review act on them); a selection made in the Explorer is highlighted in the figure.
It needs ``dq.analyze(ds, training=rec)``. Plotly's selection travels as JSON, so the map is capped
at ``max_points`` samples (a seeded random subset of those the run saw).
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("cartography_variability", "cartography_confidence", "cartography_correctness")


def data_map(explorer, max_points: int = 50_000, seed: int = 0):
    """A plotly ``FigureWidget`` of the data map, linked to ``explorer.selection``."""
    import plotly.graph_objects as go

    an = explorer.analysis
    s = an.samples
    missing = [c for c in COLUMNS if c not in s.columns]
    if missing:
        raise ValueError("data_map: an.samples has no training dynamics (missing "
                         f"{missing}); record the training run with dq.TrainingRecorder and analyse with "
                         "dq.analyze(ds, training=rec)")
    if max_points < 1:
        raise ValueError(f"data_map: max_points must be >= 1, got {max_points}")
    var = s["cartography_variability"].to_numpy(np.float64)
    conf = s["cartography_confidence"].to_numpy(np.float64)
    rows = np.flatnonzero(np.isfinite(var) & np.isfinite(conf))
    if len(rows) == 0:
        raise ValueError("data_map: no sample of an.samples was logged by the training run")
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    corr = s["cartography_correctness"].to_numpy(np.float64)[rows]
    labels = s["label"].astype(str).to_numpy()[rows] if "label" in s.columns else np.full(len(rows), "")
    ids = s.index.to_numpy()[rows]
    fig = go.FigureWidget(go.Scattergl(
        x=var[rows], y=conf[rows], mode="markers",
        marker=dict(color=corr, colorscale="RdYlBu", cmin=0, cmax=1, size=5, opacity=0.8,
                    colorbar=dict(title="correctness", thickness=12)),
        text=[f"{i} · {lab}" for i, lab in zip(ids, labels)], hoverinfo="text+x+y",
        selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.15))))
    fig.update_layout(title="data map (training dynamics)", xaxis_title="variability", yaxis_title="confidence",
                      dragmode="lasso", height=420, margin=dict(l=50, r=10, t=40, b=40))
    trace = fig.data[0]
    row_of = {int(r): j for j, r in enumerate(rows)}
    state = {"pushing": False}

    def from_figure(_trace, points, _selector):
        if state["pushing"]:
            return
        explorer.selection = s.index[rows[np.asarray(points.point_inds, dtype=np.int64)]]

    def from_explorer(_change=None):
        selected = explorer.selection_model.rows
        inds = [row_of[int(r)] for r in selected if int(r) in row_of]
        state["pushing"] = True
        try:
            trace.selectedpoints = inds if len(selected) else None
        finally:
            state["pushing"] = False

    trace.on_selection(from_figure)
    explorer.selection_model.observe(from_explorer, names="data")
    from_explorer()
    return fig
