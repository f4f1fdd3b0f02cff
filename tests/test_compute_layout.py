import numpy as np

from dqwidgets.compute.layout import pca_layout, umap_epochs


def test_pca_layout_separates_the_widest_direction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 20)).astype(np.float32)
    X[:250, 3] += 30
    xy = pca_layout(X)
    assert xy.shape == (500, 2) and xy.dtype == np.float32 and np.abs(xy).max() <= 10.0001
    assert abs(xy[:250, 0].mean() - xy[250:, 0].mean()) > 10


def test_umap_epochs_follow_umap_defaults_and_shrink_for_large_n():
    assert umap_epochs(5000) == 500 and umap_epochs(30_000) == 200
    assert 60 <= umap_epochs(1_000_000) < umap_epochs(100_000) < 200
