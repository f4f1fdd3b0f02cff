import numpy as np

from dqwidgets.compute.layout import pca_layout, umap_epochs


def test_pca_layout_separates_the_widest_direction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 20)).astype(np.float32)
    X[:250, 3] += 30
    xy = pca_layout(X)
    assert xy.shape == (500, 2) and xy.dtype == np.float32 and np.abs(xy).max() <= 10.0001
    assert abs(xy[:250, 0].mean() - xy[250:, 0].mean()) > 10


def test_pca_layout_is_the_first_two_principal_components_up_to_scale():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    for d in (40, 600):  # covariance eigenvectors, and the randomised SVD above 512 features
        scale = np.concatenate([[8.0, 5.0], np.linspace(2, 0.5, d - 2)])  # two leading directions
        X = (rng.normal(size=(800, d)) * scale).astype(np.float32)
        xy = pca_layout(X)
        ref = PCA(2).fit_transform(X)
        for a in range(2):
            assert abs(np.corrcoef(xy[:, a], ref[:, a])[0, 1]) > 0.99
    assert np.array_equal(pca_layout(X[:, :40]), pca_layout(X[:, :40].copy()))


def test_umap_epochs_by_size_shrink_for_large_n():
    assert umap_epochs(5000) == 300 and umap_epochs(30_000) == 200
    assert 60 <= umap_epochs(1_000_000) < umap_epochs(100_000) < 200


def test_umap_layouts_keep_neighbourhoods_as_well_as_umap_learn_default():
    """trustworthiness@15 and 15-NN preservation of both UMAP optimisers on the analysis' graph, within
    0.01 (trustworthiness) and 0.03 (preservation, noisier on 1,200 points) of umap-learn's own
    fit_transform with the same metric; a layout that loses the clusters fails."""
    import umap
    from sklearn.manifold import trustworthiness

    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.layout import umap_layout, umap_torch_layout

    rng = np.random.default_rng(0)
    n = 1200
    centres = rng.normal(0, 1, (6, 3)) @ rng.normal(0, 1, (3, 40))       # clusters on a 3-D subspace
    X = (centres[rng.integers(0, 6, n)] * 3 + rng.normal(0, 1, (n, 40)) * 0.6).astype(np.float32)
    graph = knn_graph(X, 15, device="cpu")
    init = pca_layout(X)
    reference = umap.UMAP(metric="cosine", random_state=0).fit_transform(X)
    cos_nn = knn_graph(X, 15, device="cpu", method="exact").indices

    def quality(Y):
        nn = knn_graph(Y, 15, metric="euclidean", device="cpu", method="exact").indices
        keep = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(cos_nn, nn)])
        return trustworthiness(X, Y, n_neighbors=15, metric="cosine"), keep

    t_ref, p_ref = quality(reference)
    for Y in (umap_torch_layout(graph, init=init), umap_layout(graph, init=init)):
        assert Y.shape == (n, 2) and np.isfinite(Y).all()
        t, p = quality(Y)
        assert t >= t_ref - 0.01 and p >= p_ref - 0.03, (t, t_ref, p, p_ref)
    t_pca, _ = quality(init)
    assert t_ref > t_pca + 0.01        # the bound means something: PCA alone is clearly worse


def test_analyze_with_the_torch_layout_replaces_the_pca_map(tmp_path):
    import pytest

    import dqwidgets as dq

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    X = (rng.normal(0, 4, (3, 16))[y] + rng.normal(size=(400, 16))).astype(np.float32)
    an = dq.analyze(dq.Dataset.from_arrays(X, y), layout="umap-torch", wait_layout=False, progress=False,
                    workdir=tmp_path, device="cpu")
    pca = an.samples[["x", "y"]].to_numpy().copy()
    an.wait_layout(timeout=600)
    xy = an.samples[["x", "y"]].to_numpy()
    assert an.layout_status == "final" and np.isfinite(xy).all() and not np.allclose(xy, pca)
    assert "layout_umap" in an.info["seconds"]
    with pytest.raises(ValueError, match="umap-torch"):
        dq.analyze(dq.Dataset.from_arrays(X, y), layout="tsne", progress=False, workdir=tmp_path)


def test_the_default_layout_on_a_gpu_without_cuml_is_the_torch_sgd_at_twice_the_epochs(monkeypatch):
    """layout="umap" picks by device: umap-learn on a CPU; on a GPU cuML when it is installed, else the
    torch SGD at GPU_TORCH_EPOCH_FACTOR x umap-learn's epochs there. "umap-learn" forces umap-learn.
    (The dispatch is checked with the optimisers stubbed: no GPU here.)"""
    import torch

    import dqwidgets.compute.layout as layout
    from dqwidgets.compute.knn import knn_graph

    calls = []
    monkeypatch.setattr(layout, "umap_torch_layout", lambda g, **kw: calls.append(("torch", kw)) or "t")
    monkeypatch.setattr(layout, "umap_layout", lambda g, **kw: calls.append(("umap-learn", kw)) or "u")
    monkeypatch.setattr(layout, "_cuml_layout", lambda *a: None)
    X = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    g = knn_graph(X, 10, device="cpu")
    assert layout.final_layout("umap", g, features=X, device="cpu") == "u"
    assert layout.final_layout("umap", g, features=X, device=torch.device("cuda")) == "t"
    assert calls[-1][1]["n_epochs"] == layout.GPU_TORCH_EPOCH_FACTOR * umap_epochs(200)
    assert layout.final_layout("umap-learn", g, features=X, device=torch.device("cuda")) == "u"
    assert layout.final_layout("umap-torch", g, features=X, device="cpu") == "t" and "n_epochs" not in calls[-1][1]
    monkeypatch.setattr(layout, "_cuml_layout", lambda *a: "cuml")
    assert layout.final_layout("umap", g, features=X, device=torch.device("cuda")) == "cuml"
