"""Scale: synthetic N x 128 embeddings with planted issues, analyzed by the local and the Ray engine.

    .venv/bin/python bench/bench_scale.py --sizes 100000 300000 1000000 --engines local ray

Each (engine, N) runs in its own process (a clean peak-memory reading). The data are written once as
Parquet shards (``Dataset.from_parquet(features=...)``) that both engines read. Per stage it records
the seconds and the driver's peak resident memory (VmHWM, reset at each stage start for the Ray
engine; the local engine's whole-run peak), the planted issues found, and for the Ray run the
recall@10 of its kNN graph against exact search for 500 random samples. Results:
bench/results/bench_scale.{json,md}, with the load average (timings on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
D, C = 128, 20


def make_data(n: int, folder: Path, seed: int = 0, rows_per_file: int = 100_000) -> dict:
    """Gaussian classes in 128-D with 3% flipped labels, 0.5% far samples and 0.5% near copies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = folder / "_planted.npz"
    if done.exists():
        return dict(np.load(done))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(C, D)).astype(np.float32) * 1.5
    n_ood, n_dup = n // 200, n // 200
    noisy, ood, dup_of = [], [], []
    start = 0
    for f, s in enumerate(range(0, n, rows_per_file)):
        m = min(rows_per_file, n - s)
        y = rng.integers(0, C, m)
        X = centers[y] + rng.normal(size=(m, D)).astype(np.float32)
        idx = np.arange(s, s + m)
        o = idx < n_ood
        X[o] = rng.normal(size=(int(o.sum()), D)).astype(np.float32) * 4
        d = (idx >= n_ood + n_dup) & (idx < n_ood + 2 * n_dup)  # copies of the n_dup rows before them
        src = np.flatnonzero(d) - n_dup
        X[d] = X[src] + rng.normal(size=(len(src), D)).astype(np.float32) * 0.01
        flip = rng.random(m) < 0.03
        given = np.where(flip, (y + rng.integers(1, C, m)) % C, y)
        noisy.append(idx[flip & ~o])
        ood.append(idx[o])
        dup_of.append(idx[d])
        t = pa.table({"id": idx, "emb": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), D),
                      "label": pa.array([f"class{v:02d}" for v in given]),
                      "source": pa.array(rng.choice(["web", "scan", "phone"], m))})
        pq.write_table(t, folder / f"part-{f:04d}.parquet", row_group_size=25_000)
        start += m
    truth = {"noisy": np.concatenate(noisy), "ood": np.concatenate(ood), "dup": np.concatenate(dup_of)}
    np.savez(done, **truth)
    return truth


class RssSampler:
    """The process' resident memory every ``every`` seconds (a thread): the local engine's peak per
    stage is the largest sample inside the stage's time span (its stages run one after another)."""

    def __init__(self, every: float = 0.25):
        import threading

        self.every, self.samples, self.t0 = every, [], time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            with open("/proc/self/status") as f:
                rss = next(line for line in f if line.startswith("VmRSS"))
            self.samples.append((time.perf_counter() - self.t0, int(rss.split()[1]) / 1024))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def per_stage(self, start: float, seconds: dict) -> dict:
        out, t = {}, start
        for name, s in seconds.items():
            inside = [m for u, m in self.samples if t <= u <= t + s + self.every]
            if inside:
                out[name] = max(inside)
            t += s
        return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def child(engine: str, n: int, folder: Path, workdir: Path, out: Path) -> None:
    import dqwidgets as dq

    sampler = RssSampler()

    truth = dict(np.load(folder / "_planted.npz"))
    t0 = time.perf_counter()
    ds = dq.Dataset.from_parquet(folder, features="emb", label="label", id="id")
    read_s = time.perf_counter() - t0
    opts = None
    if engine == "ray":
        from dqwidgets.engine.ray_engine import start_local

        import ray

        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            start_local(num_cpus=os.cpu_count())
        opts = {"chunk_rows": 50_000, "actors": 1}
    t0 = time.perf_counter()
    start = t0 - sampler.t0
    an = dq.analyze(ds, engine=engine, engine_options=opts, workdir=workdir, progress=False, seed=0)
    if engine == "local":
        an.wait_layout()
    total = time.perf_counter() - t0
    sampler.stop()
    s = an.samples
    ids = s.index.to_numpy()

    def found(flag, which):
        hit = set(ids[s[flag].to_numpy()].tolist())
        planted = set(truth[which].tolist())
        return {"flagged": len(hit), "planted": len(planted), "recall": len(hit & planted) / max(1, len(planted)),
                "precision": len(hit & planted) / max(1, len(hit))}

    rec = {"engine": engine, "n": n, "dim": D, "classes": C, "read_seconds": read_s, "total_seconds": total,
           "seconds": an.info["seconds"], "graph_method": an.info["graph_method"],
           "label_issue": found("is_label_issue", "noisy"), "ood": found("is_ood", "ood"),
           "duplicate": found("is_duplicate", "dup")}
    if engine == "ray":
        rec["driver_peak_mb_per_stage"] = an.info["driver_peak_mb"]
    else:  # sampled every 0.25 s (the Ray engine resets and reads VmHWM at each stage instead)
        rec["driver_peak_mb_per_stage"] = sampler.per_stage(start, an.info["seconds"])
    rec["driver_mb_after_analyze"] = sampler.samples[-1][1]
    rec["analysis_arrays_mb"] = _analysis_arrays_mb(an)
    with open("/proc/self/status") as f:  # the whole run's peak, before this bench's own recall check
        rec["driver_peak_mb"] = int(next(line for line in f if line.startswith("VmHWM")).split()[1]) / 1024
    if engine == "ray":
        rec["embedding_scans"] = an.info.get("embedding_scans")  # what the score stages read, in scans of N
        rec["driver_anon_peak_mb_per_stage"] = an.info.get("driver_anon_peak_mb")
        rec["knn"] = an.info.get("knn")  # IVF: cells, the nprobe chosen, its recall on the fit sample's queries
        rec["recall_at_10"] = _recall(an, n)
    out.write_text(json.dumps(rec))


def _analysis_arrays_mb(an) -> dict:
    """What the returned Analysis holds in the driver's memory (memory-mapped arrays count 0): the
    N-row samples frame is the part no engine can avoid (one score column per row)."""
    def mapped(a):  # a memmap, or a view of one (np.asarray of a memmap is a plain ndarray over it)
        while a is not None:
            if isinstance(a, (np.memmap, memoryview)) or type(a).__name__ == "mmap":
                return True
            a = getattr(a, "base", None)
        return False

    def resident(a):
        return 0.0 if a is None or not isinstance(a, np.ndarray) or mapped(a) else a.nbytes / 2 ** 20

    g = an.graph
    return {"samples_frame": float(an.samples.memory_usage(deep=True).sum()) / 2 ** 20,
            "features": resident(an.features), "pred_probs": resident(an.pred_probs),
            "graph": resident(getattr(g, "indices", None)) + resident(getattr(g, "distances", None))}


def _recall(an, n, queries: int = 500, k: int = 10) -> float:
    X = an.features  # memory-mapped for the Ray engine: read block by block, never whole
    rng = np.random.default_rng(1)
    q = rng.choice(n, queries, replace=False)
    norm = lambda A: A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)  # noqa: E731
    Q = norm(np.asarray(X[np.sort(q)], dtype=np.float32))[np.argsort(np.argsort(q))]
    best_s, best_i = np.full((queries, k), -np.inf, np.float32), np.zeros((queries, k), np.int64)
    for s in range(0, n, 100_000):  # a running top k: never queries x N similarities at once
        sim = Q @ norm(np.asarray(X[s:s + 100_000], dtype=np.float32)).T
        own = (q >= s) & (q < s + len(sim[0]))
        sim[np.flatnonzero(own), q[own] - s] = -np.inf
        both_s = np.concatenate([best_s, sim], 1)
        both_i = np.concatenate([best_i, np.broadcast_to(np.arange(s, s + sim.shape[1]), sim.shape)], 1)
        top = np.argpartition(-both_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(both_s, top, 1), np.take_along_axis(both_i, top, 1)
    exact = best_i
    got = np.asarray(an.graph.indices)[q, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, exact)]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    ap.add_argument("--engines", nargs="+", default=["local", "ray"])
    ap.add_argument("--data", type=Path, default=Path("/tmp/dqwidgets-bench-scale"))
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--collect", action="store_true",
                    help="gather the Ray runs' per-stage logs (also of runs still going or killed) into "
                         "bench/results/bench_scale_stages.{jsonl,md}")
    args = ap.parse_args()
    if args.collect:
        collect_stages(args.data)
        return
    if args.child:
        engine, n = args.child[0], int(args.child[1])
        folder = args.data / f"n{n}"
        child(engine, n, folder, args.data / f"work-{engine}-{n}", args.data / f"result-{engine}-{n}.json")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / "bench_scale.json"
    for n in args.sizes:
        make_data(n, args.data / f"n{n}")
        for engine in args.engines:
            load_before = open("/proc/loadavg").read().strip()
            res = args.data / f"result-{engine}-{n}.json"
            res.unlink(missing_ok=True)
            log = open(args.data / f"child-{engine}-{n}.log", "w")
            proc = subprocess.Popen([sys.executable, __file__, "--child", engine, str(n), "--data", str(args.data)],
                                    stdout=log, stderr=subprocess.STDOUT, text=True)
            loads = []
            while proc.poll() is None:  # the 1-minute load average every 30 s while the run goes on
                loads.append(float(open("/proc/loadavg").read().split()[0]))
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
            log.close()
            if proc.returncode != 0 or not res.exists():
                tail = (args.data / f"child-{engine}-{n}.log").read_text().strip().splitlines()
                print("\n".join(tail[-30:]), file=sys.stderr)
                rec = {"engine": engine, "n": n, "error": tail[-1:]}
            else:
                rec = json.loads(res.read_text())
            rec["loadavg_before"], rec["loadavg_after"] = load_before, open("/proc/loadavg").read().strip()
            rec["loadavg_1min_during"] = {"min": min(loads), "mean": float(np.mean(loads)), "max": max(loads)}
            rec["cpus"] = os.cpu_count()
            rec["cpu_model"] = cpu_model()  # sessions run on different machines: seconds compare within one model only
            rec["finished_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            # other bench_scale runs may have written meanwhile: merge into the file as it is now
            records = json.loads(out_json.read_text()) if out_json.exists() else []
            records = [r for r in records if (r["engine"], r["n"]) != (engine, n)] + [rec]
            out_json.write_text(json.dumps(records, indent=1))
            write_md(records)
            print(json.dumps(rec), flush=True)


def write_md(records):
    lines = ["# bench_scale: local vs Ray engine, synthetic N x 128, 20 classes, planted issues", "",
             "Timings on a shared 2-core machine (other engineers' jobs ran at the same time: see loadavg); "
             "driver memory = peak resident memory of the process that called `analyze`.", "",
             "| engine | N | total s | driver peak MB | graph | recall@10 | label R/P | ood R/P | dup R/P | loadavg before | "
             "load during (min/mean/max) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["n"], r["engine"])):
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['n']:,} | failed: {r['error']} | | | | | | | {r.get('loadavg_before')} |")
            continue
        rp = lambda k: f"{r[k]['recall']:.2f}/{r[k]['precision']:.2f}"  # noqa: E731
        lines.append(f"| {r['engine']} | {r['n']:,} | {r['total_seconds']:.0f} | {r['driver_peak_mb']:.0f} | "
                     f"{r['graph_method']} | {r.get('recall_at_10', float('nan')):.3f} | {rp('label_issue')} | "
                     f"{rp('ood')} | {rp('duplicate')} | {r['loadavg_before']} | {_during(r)} |")
    lines += ["", "Per stage (seconds / driver peak MB during the stage; Ray: VmHWM reset at each stage, "
              "local: resident memory sampled every 0.25 s):", ""]
    for r in sorted(records, key=lambda r: (r["n"], r["engine"])):
        if "error" in r:
            continue
        mem = r.get("driver_peak_mb_per_stage", {})
        parts = [f"{k} {v:.1f}s" + (f" / {mem[k]:.0f} MB" if k in mem else "") for k, v in r["seconds"].items()]
        lines.append(f"- {r['engine']} {r['n']:,}: " + ", ".join(parts))
        if r.get("knn") and "nprobe" in r["knn"]:
            kn = r["knn"]
            lines.append(f"  - kNN: IVF {kn['cells']:,} cells, nprobe {kn['nprobe']} chosen for recall "
                         f"{kn['target_recall']:.2f} on {kn['queries']:,} fit-sample queries (got "
                         f"{kn['sample_recall']:.3f}); at most {kn['candidates_per_query_max']:,} candidates per query")
        anon = r.get("driver_anon_peak_mb_per_stage") or {}
        if anon:
            lines.append("  - driver anonymous memory peak per stage (RssAnon, its own arrays): "
                         + ", ".join(f"{k} {v:.0f} MB" for k, v in anon.items()))
        if "analysis_arrays_mb" in r:
            a = r["analysis_arrays_mb"]
            lines.append(f"  - held by the returned Analysis: samples frame {a['samples_frame']:.0f} MB (N rows), "
                         f"resident features {a['features']:.0f} MB, probabilities {a['pred_probs']:.0f} MB, "
                         f"graph {a['graph']:.0f} MB (0 = memory-mapped); driver after analyze "
                         f"{r['driver_mb_after_analyze']:.0f} MB")
    md = RESULTS / "bench_scale.md"
    old = md.read_text() if md.exists() else ""
    notes = old[old.index("\nNotes"):] if "\nNotes" in old else ""  # hand-written notes stay
    md.write_text("\n".join(lines) + "\n" + notes)


def collect_stages(data: Path) -> None:
    """Every line of the Ray engine's ``stages.jsonl`` under the bench workdirs, with its N: each
    stage's seconds and driver memory as it ended, for runs that finished and runs that did not."""
    rows = []
    for log in sorted(data.glob("work-ray-*/*/ray/stages.jsonl")):
        n = int(log.parts[-4].rsplit("-", 1)[1])
        for line in log.read_text().splitlines():
            rows.append({"n": n, **json.loads(line)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_scale_stages.jsonl"
    if out.exists():  # the rows of an N whose workdir is gone (an earlier session's run) stay
        on_disk = {r["n"] for r in rows}
        kept = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        rows = [r for r in kept if r["n"] not in on_disk] + rows
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["# bench_scale: Ray engine stages as they ended (from <workdir>/<fingerprint>/ray/stages.jsonl)", "",
             "Driver peak = VmHWM during the stage (counts touched pages of memory-mapped files); anonymous "
             "peak = RssAnon sampled every 50 ms (the arrays the driver holds). Load average: "
             "bench_scale_loadavg.log.", "",
             "| N | stage | seconds | driver peak MB | driver anonymous peak MB | ended (UTC) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['stage']} | {r['seconds']:.1f} | {r['driver_peak_mb']:.0f} | "
                     f"{r['driver_anon_peak_mb']:.0f} | {r['utc']} |")
    (RESULTS / "bench_scale_stages.md").write_text("\n".join(lines) + "\n")


def _during(r) -> str:
    d = r.get("loadavg_1min_during")
    return f"{d['min']:.1f}/{d['mean']:.1f}/{d['max']:.1f}" if d else ""


if __name__ == "__main__":
    main()
