"""Embedding throughput and the cached second run.

Measures, on whatever device torch picks (or --device):

1. EfficientNet-Lite0 images/s at its native 224 x 224, through the whole pipeline: PNG files on
   disk (Fashion-MNIST test images written into class folders), hashed, decoded, measured and resized
   in DataLoader workers, embedded (fp16 on CUDA). Model loading and a warm-up batch are excluded.
2. all-MiniLM-L6-v2 texts/s on Rotten Tomatoes critic snippets (same exclusions).
3. ``dq.analyze`` run twice on the image folder with one workdir: the second run's embed step must
   come from the cache (its ``info["seconds"]["embed"]`` and whole wall time are printed).

Writes bench/results/bench_embed.json and bench/results/bench_embed.md.

    .venv/bin/python bench/bench_embed.py                  # CPU defaults: 384 images, 2000 texts
    .venv/bin/python bench/bench_embed.py --images 50000   # e.g. on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

import dqwidgets as dq
from dqwidgets.compute.device import resolve_device
from dqwidgets.embed import resolve_embedder
from dqwidgets.embed.pipeline import DecodedImages
from dqwidgets.examples import load_fashion_mnist, load_rotten_tomatoes

RESULTS = Path(__file__).parent / "results"


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"CPU {model} ({torch.get_num_threads()} torch threads)"


def write_image_folder(root: Path, n: int) -> None:
    images, labels, names = load_fashion_mnist("test", n=n, seed=0)
    for i, (img, y) in enumerate(zip(images, labels)):
        folder = root / names[y].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:06d}.png")


def warm(embedder, dev, sample):
    start = time.perf_counter()
    embedder.embed_batch(sample, dev)
    return time.perf_counter() - start


def bench_images(folder: Path, dev, batch_size):
    ds = dq.Dataset.from_image_folder(folder)
    embedder = resolve_embedder("auto", "image")
    load_s = warm(embedder, dev, torch.zeros(2, 3, 224, 224, dtype=torch.uint8))
    start = time.perf_counter()
    emb = ds.embed(embedder=embedder, device=dev, cache_dir=False, progress=False, batch_size=batch_size)
    wall = time.perf_counter() - start
    return {"n": len(ds), "wall_s": round(wall, 2), "images_per_s": round(len(ds) / wall, 1),
            "model_load_and_warmup_s": round(load_s, 2), "embedder": emb.embedder,
            "unreadable": int(emb.flags["is_unreadable"].sum()),
            "decode_images_per_s_one_process": decode_rate(ds, embedder)}


def decode_rate(ds, embedder) -> float:
    """What one DataLoader worker sustains: open + measure + resize to 224, without the model."""
    items = DecodedImages(ds.frame[ds.image].tolist(), np.arange(len(ds)), ds.root, embedder.transform)
    items[0]                                  # PIL loads its format plugins on first use
    start = time.perf_counter()
    for i in range(len(items)):
        items[i]
    return round(len(items) / (time.perf_counter() - start), 1)


def bench_texts(n: int, dev, batch_size):
    df = load_rotten_tomatoes(n=n)
    ds = dq.Dataset.from_dataframe(df, text="text", label="label")
    embedder = resolve_embedder("auto", "text")
    load_s = warm(embedder, dev, ["warm up the model"] * 4)
    start = time.perf_counter()
    emb = ds.embed(embedder=embedder, device=dev, cache_dir=False, progress=False, batch_size=batch_size)
    wall = time.perf_counter() - start
    chars = df["text"].str.len()
    return {"n": len(ds), "wall_s": round(wall, 2), "texts_per_s": round(len(ds) / wall, 1),
            "mean_chars": round(float(chars.mean()), 1), "model_load_and_warmup_s": round(load_s, 2),
            "embedder": emb.embedder}


def bench_second_run(folder: Path, workdir: Path, dev):
    ds = dq.Dataset.from_image_folder(folder)
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        an = dq.analyze(ds, workdir=workdir, device=dev, progress=False)
        runs.append({"analyze_wall_s": round(time.perf_counter() - start, 2),
                     "embed_step_s": round(an.info["seconds"].get("embed", float("nan")), 3)})
    return {"n": len(ds), "first": runs[0], "second": runs[1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=None, help="default: 384 on CPU, 20000 on CUDA")
    ap.add_argument("--texts", type=int, default=None, help="default: 2000 on CPU, 20000 on CUDA")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--skip-analyze", action="store_true")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    n_images = args.images or (20000 if gpu else 384)
    n_texts = args.texts or (20000 if gpu else 2000)
    result = {"device": device_name(dev), "torch": torch.__version__,
              "load_average_1m_at_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fashion"
        write_image_folder(folder, n_images)
        result["images"] = bench_images(folder, dev, args.batch_size)
        print("images:", result["images"], flush=True)
        result["texts"] = bench_texts(n_texts, dev, args.batch_size)
        print("texts:", result["texts"], flush=True)
        if not args.skip_analyze:
            result["second_run"] = bench_second_run(folder, Path(tmp) / "work", dev)
            print("second run:", result["second_run"], flush=True)
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "gpu" if gpu else "cpu"
    path = RESULTS / "bench_embed.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[tag] = result
    path.write_text(json.dumps(stored, indent=2) + "\n")
    (RESULTS / "bench_embed.md").write_text(markdown(stored))
    print(f"wrote {path}")


def markdown(stored: dict) -> str:
    lines = ["# bench_embed", "", "Throughput excludes model loading (shown in notes). The CPU machine is shared: "
             "the 1-minute load average during the run is listed per device.", "",
             "| device | what | samples | throughput | notes |", "|---|---|---|---|---|"]
    for r in stored.values():
        if "load_average_1m_at_start" in r:
            lines.append(f"| {r['device']} | load average (1 min) at start / end | | "
                         f"{r['load_average_1m_at_start']} / {r.get('load_average_1m_at_end')} | {r['cpus']} CPUs |")
        im, tx = r["images"], r["texts"]
        lines.append(f"| {r['device']} | EfficientNet-Lite0, PNG folder, 224x224 | {im['n']} | "
                     f"{im['images_per_s']} images/s | model load + warm-up {im['model_load_and_warmup_s']} s; "
                     f"decoding alone {im.get('decode_images_per_s_one_process', '?')} images/s per process |")
        lines.append(f"| {r['device']} | all-MiniLM-L6-v2, Rotten Tomatoes | {tx['n']} | "
                     f"{tx['texts_per_s']} texts/s | mean {tx['mean_chars']} chars |")
        if "second_run" in r:
            s = r["second_run"]
            lines.append(f"| {r['device']} | dq.analyze twice, same workdir | {s['n']} | embed step "
                         f"{s['first']['embed_step_s']} s, then {s['second']['embed_step_s']} s (cached) | "
                         f"analyze wall {s['first']['analyze_wall_s']} s, then {s['second']['analyze_wall_s']} s |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
