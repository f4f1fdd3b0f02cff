"""Speed and peak memory of dq.analyze against the pipeline a user runs today, side by side.

Baseline: scikit-learn LogisticRegression 3-fold out-of-fold probabilities + cleanlab
Datalab.find_issues(features, pred_probs) + umap-learn fit_transform. Data (from the issue): a
10-class Gaussian mixture, centres ~ N(0, 3^2) in D=128, points = centre + N(0, 1), 10% of labels
flipped. Each pipeline runs in its own fresh process, and its timer starts *before* it imports its
libraries (dqwidgets + torch, or scikit-learn + cleanlab + umap-learn), so imports count for both; the
data is generated (numpy only) before the timer starts. Peak memory is that process' own maximum RSS.

numba: both pipelines compile numba kernels (umap-learn, pynndescent). Each N runs twice per side:
"cold", with a fresh empty ``NUMBA_CACHE_DIR`` for each side (every kernel compiles, as on a new
machine), then "warm", again in a fresh process with that side's cache directory from the cold run
(whatever each library stores in numba's disk cache is reused; dqwidgets also stores umap-learn's
graph and SGD kernels there, umap-learn itself does not). The table shows both.

    python bench/bench_analyze.py                 # N = 10k, 30k, 100k, 300k; baseline up to 100k
    python bench/bench_analyze.py 10000 --baseline-max 30000
    python bench/bench_analyze.py 10000 --cold-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
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
    X, y, _ = mixture(n)
    t = time.perf_counter()
    import dqwidgets as dq

    steps = {"import": time.perf_counter() - t}
    with tempfile.TemporaryDirectory() as workdir:       # a fresh journal and embedding cache
        an = dq.analyze(dq.Dataset.from_arrays(X, y), progress=False, workdir=workdir)
    seconds = time.perf_counter() - t
    info = getattr(an, "info", None) or {}
    steps.update(info.get("seconds", {}))
    graph = getattr(an.graph, "method", None) or info.get("graph_method")
    return {"seconds": seconds, "steps": steps, "graph": graph, "device": str(info.get("device", "?"))}


def run_baseline(n: int) -> dict:
    X, y, _ = mixture(n)
    t = time.perf_counter()
    import umap
    from cleanlab import Datalab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    steps = {"import": time.perf_counter() - t}
    t1 = time.perf_counter()
    probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=3, method="predict_proba")
    steps["lr_3fold"] = time.perf_counter() - t1
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


def measure(which: str, n: int, numba_cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache))
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--child", which, str(n)], capture_output=True, text=True,
                          env=env)
    load_after = os.getloadavg()[0]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"{which} at N={n} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(line[-1][7:]), load_1m=[round(load_before, 2), round(load_after, 2)])


METHOD = ("timers start before each side's imports; cold = fresh empty NUMBA_CACHE_DIR per side, "
          "warm = a fresh process reusing that side's cache dir")
EARLIER = ("earlier method: timers started after the top-level imports (only dqwidgets' lazy umap import was "
           "timed), dqwidgets with a warm numba disk cache while the baseline compiled")


def measure_pair(n: int, with_baseline: bool, warm: bool, cache_root: Path) -> dict:
    """Interleaved (dq cold, baseline cold, dq warm, baseline warm), so a change in the machine's load
    falls on both sides rather than on one."""
    row = {"n": n}
    for state in ("cold", "warm") if warm else ("cold",):
        for side in ("ours", "baseline") if with_baseline else ("ours",):
            r = measure(side, n, cache_root / side)
            row[f"{side}_{state}_s"] = r["seconds"]
            row[f"{side}_{state}_peak_mb"] = r["peak_rss_mb"]
            row[f"{side}_{state}_steps"] = r["steps"]
            row[f"{side}_{state}_load_1m_before_after"] = r["load_1m"]
            if side == "ours":
                row["graph"], row["device"] = r["graph"], r["device"]
            print(side, state, n, round(r["seconds"], 1), r["load_1m"], flush=True)
    for state in ("cold", "warm"):
        if f"baseline_{state}_s" in row and f"ours_{state}_s" in row:
            row[f"speedup_{state}"] = row[f"baseline_{state}_s"] / row[f"ours_{state}_s"]
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 30_000, 100_000, 300_000])
    ap.add_argument("--baseline-max", type=int, default=100_000)
    ap.add_argument("--cold-only", action="store_true", help="skip the warm-cache repeat")
    ap.add_argument("--note", default="", help="recorded in the result, e.g. what else ran on the machine")
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]))
    import torch

    load_start = os.getloadavg()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="dq-bench-numba-") as cache_root:
            rows.append(measure_pair(n, n <= args.baseline_max, not args.cold_only, Path(cache_root)))
        print(json.dumps(rows[-1]), flush=True)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_at_start": load_start, "load_average_at_end": os.getloadavg(), "method": METHOD,
            "note": args.note}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_analyze.json"
    runs = load_runs(path)
    runs = [r for r in runs if {row["n"] for row in r["rows"]} - {row["n"] for row in rows}
            or r["meta"].get("method") != METHOD]     # a new run replaces an earlier run of the same sizes
    runs.append({"meta": meta, "rows": rows})
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    (RESULTS / "bench_analyze.md").write_text(markdown(runs))
    print(markdown(runs))


def load_runs(path: Path) -> list:
    if not path.exists():
        return []
    stored = json.loads(path.read_text())
    if "runs" in stored:
        return stored["runs"]
    meta = dict(stored["meta"], method=EARLIER)       # the file's layout before runs were kept side by side
    rows = [{"n": r["n"], "ours_as-run_s": r["ours_s"], "ours_as-run_peak_mb": r["ours_peak_mb"],
             "ours_as-run_steps": r["ours_steps"], "graph": r["graph"], "device": r["device"],
             **({"baseline_as-run_s": r["baseline_s"], "baseline_as-run_peak_mb": r["baseline_peak_mb"],
                 "baseline_as-run_steps": r["baseline_steps"], "speedup_as-run": r["speedup"]}
                if "baseline_s" in r else {})}
            for r in stored["rows"]]
    return [{"meta": meta, "rows": rows}]


def _f(value, fmt):
    return format(value, fmt) if isinstance(value, (int, float)) else "–"


def markdown(runs: list) -> str:
    lines = ["# bench_analyze", "", "Times in seconds, peak RSS in MB, each pipeline in its own fresh process. "
             "The machine is shared with other jobs: the load average is listed per run.", ""]
    for run in runs:
        m = run["meta"]
        lines += [f"## run {m.get('when', '(date not recorded)')}: {m['method']}", "",
                  f"{m['cpus']} CPUs, torch threads {m['torch_threads']}, GPU {m['gpu']}; load average "
                  f"at start {m.get('load_average_at_start', 'not recorded')}, at end {m['load_average_at_end']}"
                  + (f". {m['note']}" if m.get("note") else ""), "",
                  "| N | state | dq.analyze s | baseline s | speed-up | dq peak MB | baseline peak MB | graph "
                  "| load (1 min) before/after dq; baseline |", "|---|---|---|---|---|---|---|---|---|"]
        for r in run["rows"]:
            for state in ("cold", "warm", "as-run"):
                if f"ours_{state}_s" not in r:
                    continue
                lines.append(f"| {r['n']:,} | {state} | {_f(r[f'ours_{state}_s'], '.1f')} | "
                             f"{_f(r.get(f'baseline_{state}_s'), '.1f')} | {_f(r.get(f'speedup_{state}'), '.2f')}x | "
                             f"{_f(r[f'ours_{state}_peak_mb'], '.0f')} | {_f(r.get(f'baseline_{state}_peak_mb'), '.0f')} "
                             f"| {r['graph']} | {r.get(f'ours_{state}_load_1m_before_after', '–')}; "
                             f"{r.get(f'baseline_{state}_load_1m_before_after', '–')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
