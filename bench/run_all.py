"""`make bench`: every benchmark in bench/, one after the other, then the tables they wrote.

Each script measures dqwidgets side by side with the tool a user would otherwise run and writes
bench/results/<name>.json and .md. Pass names to run a subset: ``python bench/run_all.py quality embed``.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["bench_analyze", "bench_quality", "bench_embed", "bench_review_export", "bench_explorer"]


def main(names):
    chosen = [n if n.startswith("bench_") else f"bench_{n}" for n in names] or ORDER
    unknown = [n for n in chosen if not (HERE / f"{n}.py").exists()]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {ORDER}")
    failed = []
    for name in chosen:
        print(f"\n=== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / f"{name}.py")]).returncode != 0:
            failed.append(name)
    for name in chosen:
        md = HERE / "results" / f"{name}.md"
        if md.exists():
            print(f"\n{md.read_text()}")
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main(sys.argv[1:])
