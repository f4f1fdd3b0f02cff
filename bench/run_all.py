"""`make bench`: every CPU benchmark in bench/, one after the other, then the tables they wrote.

Each run below measures dqwidgets and, in the same run, the baseline a user would otherwise run:

- ``bench_analyze``: ``dq.analyze`` vs scikit-learn LR out-of-fold + cleanlab Datalab + umap-learn, each in
  a fresh process, imports timed on both sides, numba cache cold for both, then warm for both;
- ``bench_quality``: detection quality vs cleanlab Datalab on the same features and planted truth;
- ``bench_embed``: the embedding pipeline vs a plain torch DataLoader loop (same weights) and
  sentence-transformers' own ``encode``; the cached second ``analyze`` in a fresh process;
- ``bench_review_export``: journal actions and export vs plain pandas / pyarrow writes of the same rows;
- ``bench_explorer --lab``: the Explorer vs jupyter-scatter in one real JupyterLab (same samples, same lasso);
  ``bench_explorer`` alone (first draw, lasso, bytes, notebook growth) has no baseline;
- ``bench_training``: ATC accuracy estimates vs the average-confidence baseline, AUM's flags vs the best
  cut (see its docstring).

Any other ``bench/bench_*.py`` is run too (its docstring names its baseline). ``bench_gpu`` needs CUDA
and is left out unless named. Each writes bench/results/<name>[...].json and .md. Pass names to run a
subset: ``python bench/run_all.py quality embed``. At the end ``check_readme_figures.py`` lists every README figure the
results no longer hold (the run fails while any is left). ``--small`` runs the reduced sizes the README's latest
figures were measured at on the shared 2-core machine (analyze N=5,000; 128 images / 500 texts; 30k rows
for review/export); without it each script runs its full default sizes.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = [["bench_analyze"], ["bench_quality"], ["bench_embed"], ["bench_review_export"], ["bench_explorer"],
        ["bench_explorer", "--lab"], ["bench_training"]]
GPU_ONLY = {"bench_gpu"}
SMALL = {"bench_analyze": ["5000"], "bench_embed": ["--images", "128", "--texts", "500"],
         "bench_review_export": ["--n", "30000", "--repeats", "2"]}


def plan(names):
    known = [r for r in RUNS if (HERE / f"{r[0]}.py").exists()]
    others = [[p.stem] for p in sorted(HERE.glob("bench_*.py"))
              if p.stem not in {r[0] for r in RUNS} | GPU_ONLY]
    if not names:
        return known + others
    chosen = [n if n.startswith("bench_") else f"bench_{n}" for n in names]
    unknown = [n for n in chosen if not (HERE / f"{n}.py").exists()]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {sorted(p.stem for p in HERE.glob('bench_*.py'))}")
    return [r for n in chosen for r in ([r for r in known + others if r[0] == n] or [[n]])]


def main(names):
    small = "--small" in names
    runs = plan([n for n in names if n != "--small"])
    if small:
        runs = [r + SMALL.get(r[0], []) if len(r) == 1 else r for r in runs]
    failed = []
    for run in runs:
        print(f"\n=== {' '.join(run)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / f"{run[0]}.py"), *run[1:]]).returncode != 0:
            failed.append(" ".join(run))
    for name in dict.fromkeys(r[0] for r in runs):
        for md in sorted((HERE / "results").glob(f"{name}*.md")):
            print(f"\n{md.read_text()}")
    print("\n=== README figures against bench/results/ (bench/check_readme_figures.py)", flush=True)
    if subprocess.run([sys.executable, str(HERE / "check_readme_figures.py")]).returncode != 0:
        failed.append("README figures with no source in bench/results/ (update README.md)")
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main(sys.argv[1:])
