"""Speed and peak memory of dq.analyze against the pipeline a user runs today, side by side.

Baseline: scikit-learn LogisticRegression 3-fold out-of-fold probabilities + cleanlab
Datalab.find_issues(features, pred_probs) + umap-learn fit_transform. Data (from the issue): a
10-class Gaussian mixture, centres ~ N(0, 3^2) in D=128, points = centre + N(0, 1), 10% of labels
flipped. Each pipeline runs in its own fresh process (so numba compilation and imports count for
both, and peak memory is that process' own maximum RSS).

    python bench/bench_analyze.py                 # N = 10k, 30k, 100k, 300k; baseline up to 100k
    python bench/bench_analyze.py 10000 30000 --baseline-max 30000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def mixture(n: int, d: int = 128, c: int = 10, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (c, d))
    y = rng.integers(0, c, n)
    X = (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    flip = rng.random(n) < 0.1
    y_noisy = y.copy()
    y_noisy[flip] = (y[flip] + rng.integers(1, c, flip.sum())) % c
    return X, y_noisy, flip


def run_ours(n: int) -> dict:
    import dqwidgets as dq

    X, y, _ = mixture(n)
    t = time.perf_counter()
    an = dq.analyze(dq.Dataset.from_arrays(X, y), progress=False, workdir="/tmp/dq-bench")
    return {"seconds": time.perf_counter() - t, "steps": an.info["seconds"], "graph": an.info["graph_method"],
            "device": an.info["device"]}


def run_baseline(n: int) -> dict:
    import umap
    from cleanlab import Datalab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    X, y, _ = mixture(n)
    steps = {}
    t = time.perf_counter()
    probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=3, method="predict_proba")
    steps["lr_3fold"] = time.perf_counter() - t
    t1 = time.perf_counter()
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    lab.find_issues(features=X, pred_probs=probs)
    steps["datalab"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    umap.UMAP(random_state=None).fit_transform(X)
    steps["umap"] = time.perf_counter() - t1
    return {"seconds": time.perf_counter() - t, "steps": steps}


def child(which: str, n: int):
    import resource

    out = (run_ours if which == "ours" else run_baseline)(n)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(which: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", which, str(n)], capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"{which} at N={n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][7:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 30_000, 100_000, 300_000])
    ap.add_argument("--baseline-max", type=int, default=100_000)
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]))
    import torch

    rows = []
    for n in args.sizes:
        ours = measure("ours", n)
        base = measure("baseline", n) if n <= args.baseline_max else None
        row = {"n": n, "ours_s": ours["seconds"], "ours_peak_mb": ours["peak_rss_mb"], "ours_steps": ours["steps"],
               "graph": ours["graph"], "device": ours["device"]}
        if base:
            row.update(baseline_s=base["seconds"], baseline_peak_mb=base["peak_rss_mb"],
                       baseline_steps=base["steps"], speedup=base["seconds"] / ours["seconds"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average_at_end": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_analyze.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| N | dq.analyze s | baseline s | speed-up | dq peak MB | baseline peak MB | graph |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['ours_s']:.1f} | {r.get('baseline_s', float('nan')):.1f} | "
                     f"{r.get('speedup', float('nan')):.2f}x | {r['ours_peak_mb']:.0f} | {r.get('baseline_peak_mb', float('nan')):.0f} | {r['graph']} |")
    lines.append(f"\n{meta}")
    (RESULTS / "bench_analyze.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
