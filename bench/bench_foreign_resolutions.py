"""Issue #12 ("measure before you choose"): do the foreign-region search's fine Leiden resolutions still pay
at larger N? ``compute.foreign.RESOLUTIONS`` is (1, 3, 10, 30); the finer two are the costly ones (3.1 /
3.3 CPU s at 100k against 1.1 / 1.2 for 1 and 3) and the first view waits for them. Here ``dq.analyze``
runs with the search (and its prefetched partitions) at (1, 3, 10, 30), (1, 3, 10) and (1, 3), on
dqwidgets.planted.planted_fashion_mnist (64 pixel PCs; 2% held-out-class foreign images with random
labels, a tight one-label cluster of 1% of N) at several N, and on notebook 01's data drawn at a larger N
(EfficientNet-Lite0 features, cached under $DQ_BENCH_WORKDIR like bench_quality's). Reported: OOD flags,
precision, recall of the foreign images and of the cluster, the flags' estimated precision, the OOD step's
wall seconds.

    python bench/bench_foreign_resolutions.py [--sizes 5000 30000 50000] [--notebook-n 35000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
WORKDIR = Path(os.environ.get("DQ_BENCH_WORKDIR", "/tmp/dq-bench"))
CHOICES = ((1.0, 3.0, 10.0, 30.0), (1.0, 3.0, 10.0), (1.0, 3.0))


def analyze_with(ds, resolutions, workdir):
    import dqwidgets as dq
    import dqwidgets.analysis as A
    import dqwidgets.compute.foreign as F

    saved = (A.FOREIGN_RESOLUTIONS, A.find_foreign_clusters)
    A.FOREIGN_RESOLUTIONS = resolutions
    A.find_foreign_clusters = lambda *a, **k: F.find_foreign_clusters(*a, resolutions=resolutions, **k)
    try:
        t = time.perf_counter()
        an = dq.analyze(ds, layout="pca", progress=False, workdir=workdir)
        return an, time.perf_counter() - t
    finally:
        A.FOREIGN_RESOLUTIONS, A.find_foreign_clusters = saved


def row(case, n, resolutions, an, sec, foreign, cluster):
    s = an.samples
    f = s["is_ood"].to_numpy(bool)
    truth = foreign | cluster
    return {"case": case, "n": n, "resolutions": list(resolutions), "flagged": int(f.sum()),
            "precision": float(truth[f].mean()) if f.any() else None,
            "recall_foreign": float(f[foreign].mean()) if foreign.any() else None,
            "recall_cluster": float(f[cluster].mean()) if cluster.any() else None,
            "estimated_precision": float(s["ood_cluster_score"][f].mean()) if f.any() else None,
            "ood_step_s": an.info["seconds"]["ood"], "analyze_s": sec, "loadavg": os.getloadavg()}


def main():
    import dqwidgets as dq
    from dqwidgets.planted import notebook_fashion_mnist, planted_fashion_mnist

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[5000, 30000, 50000])
    ap.add_argument("--notebook-n", type=int, default=35000, help="0 to skip notebook 01's data")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    for n in args.sizes:
        P = planted_fashion_mnist(n=n, seed=0, cluster_size=int(0.01 * n))
        ds = dq.Dataset.from_arrays(P.features, P.labels)
        for res in CHOICES:
            with tempfile.TemporaryDirectory() as w:
                an, sec = analyze_with(ds, res, w)
            rows.append(row("pixel PCs", n, res, an, sec, P.is_foreign, P.is_cluster))
            print(rows[-1], flush=True)
    if args.notebook_n:
        case = notebook_fashion_mnist(n=args.notebook_n)
        path = WORKDIR / f"notebook01_n{args.notebook_n}.npy"
        if path.exists():
            X = np.load(path)
        else:
            WORKDIR.mkdir(parents=True, exist_ok=True)
            X = np.asarray(case.dataset().embed(cache_dir=WORKDIR / "cache", progress=False).features, np.float32)
            np.save(path, X)
        ds = case.dataset(X)
        for res in CHOICES:
            with tempfile.TemporaryDirectory() as w:
                an, sec = analyze_with(ds, res, w)
            rows.append(row("notebook 01's data (EfficientNet)", len(X), res, an, sec, np.asarray(case.is_foreign, bool),
                            np.zeros(len(X), bool)))
            print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_foreign_resolutions.json").write_text(json.dumps({"rows": rows}, indent=1))
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["Foreign-region search: Leiden resolutions tested vs N (python bench/bench_foreign_resolutions.py; see its docstring).", "",
             "| case | N | resolutions | OOD flags | precision | recall foreign | recall cluster | est. P | OOD step s | loadavg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']:,} | {', '.join(f'{x:g}' for x in r['resolutions'])} | {r['flagged']:,} | "
                     f"{f(r['precision'])} | {f(r['recall_foreign'])} | {f(r['recall_cluster'])} | {f(r['estimated_precision'])} | "
                     f"{r['ood_step_s']:.1f} | {' '.join(f'{x:.2f}' for x in r['loadavg'])} |")
    (RESULTS / "bench_foreign_resolutions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
