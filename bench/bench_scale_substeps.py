"""bench_scale's child (Ray engine, same workdir: every pass resumes, the build reruns) with per-sub-step
RssAnon peaks: each wrapped call samples /proc/self/status RssAnon every 20 ms in a thread.
usage (from the repository root, after a bench_scale.py run wrote the shards):
    python bench/bench_scale_substeps.py N OUT_PREFIX   # writes OUT_PREFIX.result.json, OUT_PREFIX.substeps.json"""
import functools, importlib, json, sys, threading, time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
import bench_scale  # noqa: E402

def anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0

RECORDS = []
DEPTH = [0]

def wrap(modname, attr, label=None):
    mod = importlib.import_module(modname)
    fn = getattr(mod, attr)
    name = label or f"{modname.split('.')[-1]}.{attr}"

    @functools.wraps(fn)
    def inner(*a, **kw):
        before = anon(); peak = [before]; stop = threading.Event()
        def run():
            while not stop.wait(0.02):
                peak[0] = max(peak[0], anon())
        th = threading.Thread(target=run, daemon=True); th.start()
        DEPTH[0] += 1; t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            DEPTH[0] -= 1; stop.set(); th.join()
            after = anon()
            RECORDS.append({"call": name, "depth": DEPTH[0], "before_mb": round(before, 1),
                            "peak_mb": round(max(peak[0], after), 1), "after_mb": round(after, 1),
                            "seconds": round(time.perf_counter() - t0, 2)})
    setattr(mod, attr, inner)

WRAPPED = {  # module: the functions of the build whose calls are sampled (where the build looks them up)
    "dqwidgets.engine.ray_engine": "_build _spread_to_file _load_edges _load_partitions _load_graph",
    "dqwidgets.analysis": "_label_step find_label_issues ood_scores find_foreign_clusters _agreement _tables slice_frame "
                          "spurious_frame drift_tests _samples_frame _flag_all _with_slice_accuracy _atc "
                          "label_with_foreign _best_closeness",
    "dqwidgets.compute.label": "knn_label_distribution fit_noise_model",
    "dqwidgets.compute.foreign": "calibrated_label_probability _isolated _far_components _spread_to_neighbours",
    "dqwidgets.compute.slices": "_build_adjacency release_graph",
    "dqwidgets.analysis_tables": "graph_slices",
}
LABELS = {"_build": "ray_engine._build (the whole build)", "find_label_issues": "label.find_label_issues",
          "find_foreign_clusters": "foreign.find_foreign_clusters", "graph_slices": "slices.graph_slices",
          "slice_frame": "analysis_tables.slice_frame", "spurious_frame": "analysis_tables.spurious_frame",
          "drift_tests": "analysis_tables.drift_tests"}
for module, names in WRAPPED.items():
    for attr in names.split():
        wrap(module, attr, LABELS.get(attr))

n = int(sys.argv[1]); out = sys.argv[2]
data = Path("/tmp/dqwidgets-bench-scale")
t0 = time.time()
bench_scale.child("ray", n, data / f"n{n}", data / f"work-ray-{n}", Path(out + ".result.json"))
Path(out + ".substeps.json").write_text(json.dumps(RECORDS, indent=1))
print("done", time.time() - t0, flush=True)
for r in RECORDS:
    print(r, flush=True)
