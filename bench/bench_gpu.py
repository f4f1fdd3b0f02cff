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


def bench_analyze(n: int, d: int, dev) -> dict:
    import torch
    from sklearn.metrics import roc_auc_score

    import dqwidgets as dq

    X, y, flip = mixture(n, d)
    warm = dq.analyze(dq.Dataset.from_arrays(X[:5000], y[:5000]), device=dev, progress=False,
                      workdir=tempfile.mkdtemp())          # CUDA context, kernels, lazy imports
    del warm
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as workdir:
        t = time.perf_counter()
        an = dq.analyze(dq.Dataset.from_arrays(X, y), device=dev, progress=False, workdir=workdir)
        first_view = time.perf_counter() - t
        an.wait_layout()
        wall = time.perf_counter() - t
    return {"n": n, "d": d, "wall_s": wall, "seconds": dict(an.info["seconds"]),
            "first_view_s": first_view, "graph": an.info.get("graph_method"),
            "label_auroc": float(roc_auc_score(flip, an.samples["label_issue_score"].fillna(0))),
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2 ** 20}


def bench_images(n: int, dev) -> list[dict]:
    import pandas as pd
    import torch

    import dqwidgets as dq
    from dqwidgets.embed.efficientnet import EfficientNetLite0
    from dqwidgets.examples import load_fashion_mnist

    out = []
    model = EfficientNetLite0(input_size=224)
    batch = torch.randint(0, 255, (256, 3, 224, 224), dtype=torch.uint8)
    model.embed_batch(batch[:8], dev)
    torch.cuda.synchronize()
    t = time.perf_counter()
    reps = 20
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

    texts = load_rotten_tomatoes(n=n, seed=0)["text"].astype(str).tolist()
    emb = resolve_embedder("auto", "text")
    emb.embed_batch(texts[:64], dev)
    t = time.perf_counter()
    embed_texts(texts, emb, dev, None, progress=False)
    return {"what": "all-MiniLM-L6-v2 pipeline, Rotten Tomatoes", "n": len(texts),
            "per_s": len(texts) / (time.perf_counter() - t)}


def write(result: dict) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", result["device"]).strip("-").lower()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"gpu-{slug}.json").write_text(json.dumps(result, indent=1))
    a = result.get("analyze")
    lines = [f"# bench_gpu on {result['device']}", "",
             f"torch {result['torch']}, CUDA {result['cuda']}, {result['cpus']} CPUs; "
             f"load average {result['loadavg']}", ""]
    if a:
        steps = ", ".join(f"{k} {v:.2f}" for k, v in a["seconds"].items())
        lines += ["| what | figure | goal |", "|---|---|---|",
                  f"| dq.analyze {a['n']:,} x {a['d']}, final layout | {a['wall_s']:.1f} s | <= 30 s |",
                  f"| first view (wait_layout=False returns) | {a['first_view_s']:.1f} s | |",
                  f"| label-issue AUROC (10% flipped) | {a['label_auroc']:.4f} | |",
                  f"| peak GPU memory | {a['peak_gpu_mb']:,.0f} MB | |", "",
                  f"graph: {a['graph']}; steps (s): {steps}", ""]
    lines += ["| embedder | samples | per second |", "|---|---|---|"]
    for r in result.get("embed", []):
        lines.append(f"| {r['what']} | {r['n']:,} | {r['per_s']:,.0f} |")
    path = RESULTS / f"gpu-{slug}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--texts", type=int, default=20_000)
    args = ap.parse_args()
    dev = require_cuda()
    import torch

    result = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "cuda": torch.version.cuda,
              "cpus": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()]}
    result["analyze"] = bench_analyze(args.n, args.d, dev)
    print(f"analyze {args.n:,} x {args.d}: {result['analyze']['wall_s']:.1f} s", flush=True)
    result["embed"] = bench_images(args.images, dev) + [bench_texts(args.texts, dev)]
    print(f"wrote {write(result)}")


if __name__ == "__main__":
    main()
