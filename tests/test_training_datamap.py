"""The data map (variability vs confidence, plotly) linked to the Explorer's selection both ways."""

import numpy as np
import pytest
from plotly.callbacks import Points

import dqwidgets as dq
from dqwidgets.widgets.datamap import data_map


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dm")
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    X = (y[:, None] * 3.0 + rng.normal(size=(n, 4))).astype(np.float32)
    ids = [f"s{i}" for i in range(n)]
    rec = dq.TrainingRecorder(tmp, classes=["a", "b"])
    for epoch in range(3):  # made-up logits: class evidence that grows with the epochs
        logits = np.stack([-(X[:, 0] - 1.5), X[:, 0] - 1.5], 1) * (epoch + 1) / 3
        rec.log(ids[:100], logits[:100], epoch)  # the last 20 samples were never trained on
    ds = dq.Dataset.from_arrays(X, labels=np.array(["a", "b"], dtype=object)[y], ids=ids)
    an = dq.analyze(ds, workdir=tmp, layout="pca", progress=False, training=rec)
    return dq.Explorer(an)


def test_data_map_plots_the_samples_the_run_saw(explorer):
    fig = data_map(explorer)
    trace = fig.data[0]
    s = explorer.analysis.samples
    assert len(trace.x) == 100
    assert np.allclose(trace.x, s["cartography_variability"].to_numpy()[:100])
    assert np.allclose(trace.y, s["cartography_confidence"].to_numpy()[:100])
    assert fig.layout.xaxis.title.text == "variability" and fig.layout.yaxis.title.text == "confidence"


def test_a_lasso_on_the_data_map_selects_in_the_explorer_and_back(explorer):
    fig = explorer.data_map()
    trace = fig.data[0]
    trace._dispatch_on_selection(Points(point_inds=[3, 5, 7], xs=[], ys=[], trace_name="", trace_index=0), None)
    assert list(explorer.selection) == ["s3", "s5", "s7"]
    explorer.selection = ["s10", "s11", "s110"]  # s110 was never trained on: not on the data map
    assert list(trace.selectedpoints) == [10, 11]
    explorer.selection = []
    assert trace.selectedpoints is None


def test_data_map_without_training_is_a_clear_error(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    an = dq.analyze(dq.Dataset.from_arrays(X, labels=np.array(["a", "b"] * 30, dtype=object)), workdir=tmp_path,
                    layout="pca", progress=False)
    with pytest.raises(ValueError, match=r"analyze\(ds, training=rec\)"):
        data_map(dq.Explorer(an))


def test_the_explorer_can_colour_the_map_by_aum_and_cartography_region(explorer):
    from dqwidgets.widgets.map import colour_column, colour_options

    s = explorer.analysis.samples
    opts = colour_options(s, has_labels=True)
    assert {"aum_score", "cartography_region"} <= set(opts)
    region = colour_column(s, "cartography_region", None, None)
    assert not region.continuous and {"easy", "ambiguous"} <= set(region.categories)
    assert colour_column(s, "aum_score", None, None).continuous
