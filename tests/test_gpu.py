"""On a GPU (README "Using a GPU"): CUDA by default, the exact kNN graph at any size, fp16 embedding.

These run wherever torch sees CUDA and skip only where it does not (`pytest -m gpu` selects them).
"""

import numpy as np
import pandas as pd
import pytest
import torch

import dqwidgets as dq
from dqwidgets.compute import knn as knn_module
from dqwidgets.compute.device import resolve_device
from dqwidgets.compute.knn import knn_graph

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")]


def test_cuda_is_the_default_device(tmp_path):
    assert resolve_device("auto").type == "cuda"
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, 300)
    X = (rng.normal(0, 4, (3, 8))[codes] + rng.normal(size=(300, 8))).astype(np.float32)
    an = dq.analyze(dq.Dataset.from_arrays(X, np.array(list("abc"))[codes]), layout="pca", progress=False,
                    workdir=tmp_path)
    assert str(an.info["device"]).startswith("cuda")
    assert an.graph.method == "exact"


def test_exact_graph_on_the_gpu_above_the_cpu_limit_matches_the_cpu():
    n = knn_module.EXACT_CPU_MAX_N + 1000                 # on a CPU this size would get the IVF graph
    X = np.random.default_rng(1).normal(size=(n, 16)).astype(np.float32)
    gpu = knn_graph(X, 10)                                 # device="auto", method="auto"
    assert gpu.method == "exact" and gpu.indices.shape == (n, 10)
    rows = np.random.default_rng(2).choice(n, 200, replace=False)
    cpu = knn_graph(X, 10, device="cpu", method="exact")
    np.testing.assert_allclose(gpu.distances[rows], cpu.distances[rows], atol=1e-4)
    assert (gpu.indices[rows] == cpu.indices[rows]).mean() > 0.99          # ties may order differently


def test_images_are_embedded_in_fp16_on_the_gpu_with_the_cpu_features():
    from dqwidgets.embed import resolve_embedder

    rng = np.random.default_rng(3)
    df = pd.DataFrame({"img": [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(8)]})
    ds = dq.Dataset.from_dataframe(df, image="img")
    embedder = resolve_embedder("auto", "image")
    dtypes = []
    model = embedder.model_on(torch.device("cuda"))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    hook = conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    try:
        on_gpu = ds.embed(embedder=embedder, device="cuda", cache_dir=False, progress=False)
    finally:
        hook.remove()
    assert dtypes and set(dtypes) == {torch.float16}
    assert on_gpu.features.dtype == np.float32 and np.isfinite(on_gpu.features).all()
    on_cpu = ds.embed(embedder=resolve_embedder("auto", "image"), device="cpu", cache_dir=False, progress=False)
    a, b = on_gpu.features, on_cpu.features
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.99
