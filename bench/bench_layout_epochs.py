"""The torch UMAP optimiser's epochs against umap-learn on the same graph (what ``layout="umap"`` runs
on a GPU without cuML: ``compute.layout.GPU_TORCH_EPOCH_FACTOR`` x umap-learn's epochs).

Fashion-MNIST as 128 principal components (bench_speed's ``fashion_pcs``), our kNN graph, the PCA
start; trustworthiness@15 and 15-NN kept in the cosine metric; the torch SGD at 1x and 2x umap-learn's
epochs (``umap_epochs``) on two seeds; on the CPU here (the quality, not the time, is the point: on a
GPU the same optimiser took 2.8 s at 1M x 512, bench/results/gpu-nvidia-h200.md).

    python bench/bench_layout_epochs.py [N ...]      # default 5000 20000
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
RESULTS = Path(__file__).parent / "results"


def main(sizes):
    from sklearn.manifold import trustworthiness

    from bench_speed import fashion_pcs
    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.layout import pca_layout, umap_epochs, umap_layout, umap_torch_layout

    rows = []
    for n in sizes:
        X = fashion_pcs(n)[0]
        g = knn_graph(X, 15, device="cpu")
        truth = knn_graph(X, 15, metric="cosine", device="cpu", method="exact").indices
        init = pca_layout(X)

        def measure(name, fn):
            t = time.perf_counter()
            Y = fn()
            sec = time.perf_counter() - t
            nn = knn_graph(Y, 15, metric="euclidean", device="cpu", method="exact").indices
            rows.append({"n": n, "layout": name, "seconds": sec,
                         "trust_cos": float(trustworthiness(X, Y, n_neighbors=15, metric="cosine")),
                         "knn_keep_cos": float(np.mean([len(set(a) & set(b)) / 15 for a, b in zip(truth, nn)]))})
            print(rows[-1], flush=True)

        measure("umap-learn on our graph", lambda: umap_layout(g, init=init, features=X))
        for factor in (1, 2):
            for seed in (0, 1):
                measure(f"torch, {factor}x epochs ({factor * umap_epochs(n)}), seed {seed}",
                        lambda: umap_torch_layout(g, init=init, features=X, n_epochs=factor * umap_epochs(n), seed=seed))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_layout_epochs.json").write_text(json.dumps({"loadavg": os.getloadavg(), "rows": rows}, indent=1))
    lines = ["# torch UMAP epochs vs umap-learn on the same graph (bench/bench_layout_epochs.py)", "",
             f"Fashion-MNIST 128 PCs, cosine metric; load average at the end {[round(v, 2) for v in os.getloadavg()]}", "",
             "| N | layout | s (CPU here) | trustworthiness@15 | 15-NN kept |", "|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['layout']} | {r['seconds']:.1f} | {r['trust_cos']:.4f} | {r['knn_keep_cos']:.4f} |"
              for r in rows]
    (RESULTS / "bench_layout_epochs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [5000, 20000])
