"""The kNN actor's threads: one faiss IVF search of the same 10,000 queries with 1 and 2 OpenMP threads,
alternated (1, 2, 1, 2), on the 300k x 128 index that bench_scale.py's Ray run wrote; wall and CPU
seconds and the load average of each (a shared machine: compare the CPU seconds, and the wall of
neighbouring runs).

    .venv/bin/python bench/bench_scale.py --sizes 300000 --engines ray   # writes the index
    .venv/bin/python bench/bench_knn_threads.py [nprobe]                  # default 96, the engine's "auto" at 300k

Results: bench/results/bench_knn_threads.jsonl.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "bench_knn_threads.jsonl"
DATA = Path("/tmp/dqwidgets-bench-scale")


def main() -> None:
    import faiss
    import numpy as np
    import pyarrow.parquet as pq

    index = faiss.read_index(glob.glob(str(DATA / "work-ray-300000/*/ray/run-*/knn/index.faiss"))[0])
    index.nprobe = int(sys.argv[1]) if len(sys.argv) > 1 else 96
    t = pq.read_table(sorted(glob.glob(str(DATA / "n300000/part-*.parquet")))[1], columns=["emb"])
    col = t.column("emb").combine_chunks()
    X = np.asarray(col.flatten().to_numpy()).reshape(len(col), -1)[:10000].astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    lines = []
    for threads in (1, 2, 1, 2):
        faiss.omp_set_num_threads(threads)
        r0, w0, l0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), os.getloadavg()[0]
        index.search(X, 16)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        rec = {"threads": threads, "queries": len(X), "nprobe": index.nprobe, "lists": index.nlist,
               "ntotal": index.ntotal, "wall_s": round(time.perf_counter() - w0, 2),
               "cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 2),
               "load1_before": l0, "load1_after": os.getloadavg()[0], "nice": os.nice(0),
               "utc": time.strftime("%H:%M:%S", time.gmtime())}
        print(json.dumps(rec), flush=True)
        lines.append(json.dumps(rec) + "\n")
    OUT.write_text("".join(lines))


if __name__ == "__main__":
    main()
