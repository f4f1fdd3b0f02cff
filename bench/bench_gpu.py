"""GPU figures in one command (``make bench-gpu``): dq.analyze at 1M x 512 and embedder throughput on CUDA.

Goals (issue #12): analyze 1M x 512 in <= 30 s; EfficientNet-Lite0 >= 2,000 images/s.

1. ``dq.analyze`` on a 10-class Gaussian mixture, N x D (default 1,000,000 x 512, 10% labels flipped),
   ``device="cuda"``, waiting for the final layout; wall time, every step's seconds, label-issue AUROC,
   peak GPU memory. The data is generated before the timer starts; imports are done (this measures
   the computation, not the start of Python).
2. EfficientNet-Lite0 images/s: the model alone on uint8 batches at 224 px (fp16 autocast), then the
   whole pipeline (decode, measure, resize in DataLoader workers, embed) on Fashion-MNIST arrays, at
   the size chosen from the data (64 px) and at 224 px.
3. all-MiniLM-L6-v2 texts/s through the pipeline on Rotten Tomatoes snippets.

Writes ``bench/results/gpu-<device>.md`` and ``.json`` with the device name. On a machine without a
CUDA GPU it stops at once with a message saying so (nothing is written).

    .venv/bin/python bench/bench_gpu.py                       # the defaults above
    .venv/bin/python bench/bench_gpu.py --n 200000 --images 20000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DRY = False  # --dry-run: the whole script on the CPU at toy sizes, to check it before a GPU is lent


def require_cuda():
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        sys.exit("bench-gpu needs a CUDA GPU, and torch sees none on this machine "
                 f"(torch {torch.__version__}, built {'for CUDA ' + built if built else 'without CUDA'}). "
                 "Run it on a GPU machine with a CUDA build of torch: make TORCH_SPEC=torch setup && make bench-gpu")
    return torch.device("cuda")


def mixture(n: int, d: int, c: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (c, d)).astype(np.float32)
    y = rng.integers(0, c, n)
    X = centres[y]
    X += rng.standard_normal((n, d), dtype=np.float32)
    flip = rng.random(n) < 0.1
    y_noisy = y.copy()
    y_noisy[flip] = (y[flip] + rng.integers(1, c, flip.sum())) % c
    return X, y_noisy, flip


def bench_analyze(n: int, d: int, dev, report=None) -> dict:
    """dq.analyze at N x D with its default layout (on a GPU without cuML: the torch UMAP SGD at 2x
    umap-learn's epochs; the first measured run, 2026-12-04, used ``layout="umap-torch"``, 1x), then umap-learn's layout on
    the same graph; ``report(partial)`` is called after each phase so a cut run keeps what it measured."""
    import torch
    from sklearn.metrics import roc_auc_score

    import dqwidgets as dq
    from dqwidgets.compute.knn import _prepare, _search

    report = report or (lambda r: None)
    X, y, flip = mixture(n, d)
    warm = dq.analyze(dq.Dataset.from_arrays(X[:5000], y[:5000]), device=dev, progress=False,
                      workdir=tempfile.mkdtemp())   # CUDA context, kernels, lazy imports
    del warm
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    r = {"n": n, "d": d, "layout": "umap (default)"}
    with tempfile.TemporaryDirectory() as workdir:
        t = time.perf_counter()
        an = dq.analyze(dq.Dataset.from_arrays(X, y), device=dev, progress=True, workdir=workdir,
                        wait_layout=False)
        r["first_view_s"] = time.perf_counter() - t
        r.update(seconds=dict(an.info["seconds"]), cpu_seconds=dict(an.info["cpu_seconds"]),
                 graph=an.info.get("graph_method"),
                 label_auroc=float(roc_auc_score(flip, an.samples["label_issue_score"].fillna(0))),
                 label_flags=int(an.samples["is_label_issue"].sum()),
                 label_precision=float(flip[an.samples["is_label_issue"].to_numpy()].mean()))
        report(r)
        an.wait_layout()
        r["wall_s"] = time.perf_counter() - t
        r["seconds"] = dict(an.info["seconds"])
        r["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        # the float16 product + float32 re-ranking against the float32 product, on 2,000 queries
        rows = np.random.default_rng(1).choice(n, 2000, replace=False)
        P = _prepare(torch.as_tensor(X).to(dev), "cosine")
        exact, _ = _search(P[rows], P, an.graph.k + 1, "cosine", None, low_precision=None)
        exact = exact[:, 1:].cpu().numpy()   # the query itself first
        r["knn_recall_vs_float32"] = float(np.mean([len(set(a) & set(b)) / an.graph.k
                                                    for a, b in zip(exact, an.graph.indices[rows])]))
        del P
        report(r)
        from dqwidgets.compute.layout import final_layout

        init = an.samples[["x", "y"]].to_numpy(np.float32) if {"x", "y"} <= set(an.samples) else None
        t = time.perf_counter()
        final_layout("umap-learn", an.graph, init=None, seed=0, features=X, device=dev)
        r["umap_learn_layout_s"] = time.perf_counter() - t
        report(r)
    return r


def bench_first_view(n: int, d: int, dev) -> dict:
    """Seconds until ``dq.analyze(..., wait_layout=False)`` returns (scores, flags, provisional map)."""
    import dqwidgets as dq

    X, y, _ = mixture(n, d)
    dq.analyze(dq.Dataset.from_arrays(X[:5000], y[:5000]), device=dev, progress=False,
               workdir=tempfile.mkdtemp(), layout="pca")
    with tempfile.TemporaryDirectory() as workdir:
        t = time.perf_counter()
        an = dq.analyze(dq.Dataset.from_arrays(X, y), device=dev, progress=False, workdir=workdir,
                        wait_layout=False)
        first = time.perf_counter() - t
        an.wait_layout()
        return {"n": n, "d": d, "first_view_s": first, "final_s": time.perf_counter() - t,
                "seconds": dict(an.info["seconds"])}


def bench_images(n: int, dev) -> list[dict]:
    import pandas as pd
    import torch

    import dqwidgets as dq
    from dqwidgets.embed.efficientnet import EfficientNetLite0
    from dqwidgets.examples import load_fashion_mnist

    out = []
    model = EfficientNetLite0(input_size=224)
    batch = torch.randint(0, 255, (8 if DRY else 256, 3, 224, 224), dtype=torch.uint8)
    model.embed_batch(batch[:8], dev)
    torch.cuda.synchronize()
    t = time.perf_counter()
    reps = 1 if DRY else 20
    for _ in range(reps):
        model.embed_batch(batch, dev)
    torch.cuda.synchronize()
    out.append({"what": "EfficientNet-Lite0 model only, uint8 batches of 256 at 224 px, fp16",
                "n": reps * len(batch), "per_s": reps * len(batch) / (time.perf_counter() - t)})
    images, labels, names = load_fashion_mnist("train", n=n, seed=0)
    df = pd.DataFrame({"image": list(images), "label": [names[c] for c in labels]})
    ds = dq.Dataset.from_dataframe(df, image="image", label="label")
    for size in (None, 224):
        emb = EfficientNetLite0(input_size=size)
        side = emb.fit_input_size(df["image"].tolist())
        emb.embed_batch(torch.zeros(8, 3, side, side, dtype=torch.uint8), dev)
        t = time.perf_counter()
        ds.embed(embedder=emb, device=dev, cache_dir=False, progress=False)
        out.append({"what": f"EfficientNet-Lite0 pipeline, Fashion-MNIST arrays at {side} px"
                            f"{' (chosen from the data)' if size is None else ''}",
                    "n": n, "per_s": n / (time.perf_counter() - t)})
    return out


def bench_texts(n: int, dev) -> dict:
    from dqwidgets.embed.pipeline import embed_texts
    from dqwidgets.embed.resolve import resolve_embedder
    from dqwidgets.examples import load_rotten_tomatoes

    try:
        texts = load_rotten_tomatoes(n=n, seed=0)["text"].astype(str).tolist()
        emb = resolve_embedder("auto", "text")
        emb.embed_batch(texts[:64], dev)
    except Exception as err:  # e.g. the model or the snippets are not installed on this machine
        return {"what": "all-MiniLM-L6-v2 pipeline, Rotten Tomatoes", "n": 0, "per_s": float("nan"),
                "not_run": f"{type(err).__name__}: {err}"[:300]}
    t = time.perf_counter()
    embed_texts(texts, emb, dev, None, progress=False)
    return {"what": "all-MiniLM-L6-v2 pipeline, Rotten Tomatoes", "n": len(texts),
            "per_s": len(texts) / (time.perf_counter() - t)}


def write(result: dict, out: Path | None = None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", result["device"]).strip("-").lower()
    RESULTS.mkdir(exist_ok=True)
    text_json = json.dumps(result, indent=1)
    a = result.get("analyze")
    lines = [f"# bench_gpu on {result['device']}", "",
             f"torch {result['torch']}, CUDA {result['cuda']}, {result['cpus']} CPUs; "
             f"load average {result['loadavg']}", ""]
    if a:
        steps = ", ".join(f"{k} {v:.2f}" for k, v in a.get("seconds", {}).items())

        def fig(key, fmt="{:.1f} s"):
            return "not reached (the run was cut)" if a.get(key) is None else fmt.format(a[key])

        lines += ["| what | figure | goal |", "|---|---|---|",
                  f"| dq.analyze {a['n']:,} x {a['d']}, final layout ({a.get('layout', 'umap-torch')}) | {fig('wall_s')} | <= 30 s |",
                  f"| first view (wait_layout=False returns) | {fig('first_view_s')} | |",
                  f"| label-issue AUROC (10% flipped) | {fig('label_auroc', '{:.4f}')} | |",
                  f"| label flags / precision | {fig('label_flags', '{:,}')} / {fig('label_precision', '{:.3f}')} | |",
                  f"| kNN recall vs the float32 product (2,000 queries) | {fig('knn_recall_vs_float32', '{:.4f}')} | |",
                  f"| peak GPU memory | {fig('peak_gpu_mb', '{:,.0f} MB')} | |",
                  f"| umap-learn layout on the same graph (CPU) | {fig('umap_learn_layout_s')} | |", "",
                  f"graph: {a.get('graph')}; steps (s): {steps}", ""]
    if result.get("first_view"):
        lines += ["| first view (wait_layout=False) | seconds | final layout (default) | steps (s) |",
                  "|---|---|---|---|"]
        for r in result["first_view"]:
            lines.append(f"| {r['n']:,} x {r['d']} | {r['first_view_s']:.1f} | {r['final_s']:.1f} | "
                         + ", ".join(f"{k} {v:.2f}" for k, v in r["seconds"].items()) + " |")
        lines.append("")
    lines += ["| embedder | samples | per second |", "|---|---|---|"]
    for r in result.get("embed", []):
        lines.append(f"| {r['what']} | {r['n']:,} | {r['per_s']:,.0f} |"
                     + (f" not run: {r['not_run']}" if r.get("not_run") else ""))
    path = RESULTS / f"gpu-{slug}.md"
    for folder in [RESULTS] + ([out] if out else []):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"gpu-{slug}.json").write_text(text_json)
        (folder / f"gpu-{slug}.md").write_text("\n".join(lines) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--texts", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=None, help="also write the result files into this folder")
    ap.add_argument("--only", choices=("analyze", "embed"), default=None,
                    help="run one part; the other part's figures are kept from the device's earlier result file")
    ap.add_argument("--first-view", default="",
                    help="also time the first view (wait_layout=False) at these sizes, e.g. 100000x128,300000x128")
    ap.add_argument("--dry-run", action="store_true",
                    help="check the script on a CPU at toy sizes (writes only into --out)")
    args = ap.parse_args()
    if args.dry_run:
        global DRY, RESULTS
        import torch

        DRY, RESULTS, dev = True, args.out or Path(tempfile.mkdtemp()), torch.device("cpu")
        for name in ("synchronize", "reset_peak_memory_stats"):
            setattr(torch.cuda, name, lambda *a, **k: None)
        torch.cuda.max_memory_allocated = lambda *a, **k: 0
        torch.cuda.get_device_name = lambda *a, **k: "dry-run CPU"
    else:
        dev = require_cuda()
    import torch

    result = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "cuda": torch.version.cuda,
              "cpus": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()], "embed": []}
    slug = re.sub(r"[^A-Za-z0-9]+", "-", result["device"]).strip("-").lower()
    earlier = RESULTS / f"gpu-{slug}.json"
    if args.only and earlier.exists():  # keep the part not run now
        old = json.loads(earlier.read_text())
        keep = "analyze" if args.only == "embed" else "embed"
        if keep in old:
            result[keep] = old[keep]
            result[f"{keep}_from_earlier_run"] = True
    for size in filter(None, args.first_view.split(",")):
        n, d = (int(v) for v in size.lower().split("x"))
        result.setdefault("first_view", []).append(bench_first_view(n, d, dev))
        write(result, args.out)
        print(result["first_view"][-1], flush=True)
    if args.only != "analyze":   # the embedders first: minutes at most, and figures even if analyze is cut
        result["embed"] = bench_images(args.images, dev)
        write(result, args.out)
        print(f"images: {[round(r['per_s']) for r in result['embed']]} per s", flush=True)
        result["embed"].append(bench_texts(args.texts, dev))
        write(result, args.out)
    if args.only != "embed":
        def report(partial):
            result["analyze"] = partial
            write(result, args.out)
            print({k: v for k, v in partial.items() if k != "cpu_seconds"}, flush=True)

        bench_analyze(args.n, args.d, dev, report)
    print(f"wrote {write(result, args.out)}")


if __name__ == "__main__":
    main()
