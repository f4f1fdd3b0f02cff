"""Benchmark: review journal and export speed.

Targets (issue 5): relabelling 100k ids in one action under 1 s; exporting 100k rows to parquet
under 5 s, on this 2-core CPU.

Data: the 70k Fashion-MNIST images (train + test, 7 x 7 average-pooled pixels as features) plus
30k mirrored train images, 100k rows in all, analysed with ``dq.analyze(..., layout="pca")``; the
review journal then holds a relabel of all 100k ids, a drop of 5k and a mark-ok of 1k.

Baselines, in the same run, on the same rows: a relabel beside writing the whole label column with
pandas to parquet and fsync-ing it (what a user saves a relabel with otherwise); each export beside
plain pandas / pyarrow writes of the very table the export wrote (read back from its output), to one
file: ``pyarrow.parquet.write_table``, ``DataFrame.to_parquet``, ``to_csv``, ``to_json(lines=True)``.
The difference is what the export does besides writing: applying the journal and flags, the
group-aware stratified split, the manifest and the atomic rename.

Prints a table and writes ``bench/results/bench_review_export.json`` and ``.md`` (another ``--n``:
``bench_review_export.n<N>.json`` and ``.md``, so a smaller run leaves the full one in place).
Run: ``.venv/bin/python bench/bench_review_export.py [--n 100000] [--repeats 5]`` (on a shared machine
e.g. ``--n 30000 --repeats 2``; the load average is recorded in the result).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import dqwidgets as dq
from dqwidgets.examples import load_fashion_mnist
from dqwidgets.review import Review

RESULTS = Path(__file__).parent / "results"
DEFAULT_N = 100_000


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def fashion_rows(n: int):
    """``n`` Fashion-MNIST rows: the 70k images, then mirrored train images for the rest."""
    train, y_train, names = load_fashion_mnist("train")
    test, y_test, _ = load_fashion_mnist("test")
    images, labels = np.concatenate([train, test]), np.r_[y_train, y_test]
    split = np.array(["train"] * len(train) + ["test"] * len(test), dtype=object)
    if n > len(images):
        extra = n - len(images)
        images = np.concatenate([images, train[:extra, :, ::-1]])
        labels, split = np.r_[labels, y_train[:extra]], np.r_[split, ["train"] * extra]
    images, labels, split = images[:n], labels[:n], split[:n]
    features = images.reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, 49).astype(np.float32) / 255
    return features, np.array(names, dtype=object)[labels], split, names


def fsynced(write, path: Path):
    write(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_journal(n: int, repeats: int, folder: Path) -> dict:
    results = {}
    for kind, ids in (("int ids", pd.RangeIndex(n, name="id")),
                      ("string ids", pd.Index([f"images/{i:06d}.png" for i in range(n)], name="id"))):
        labels = pd.Series(np.arange(n) % 10, index=ids)
        path = folder / f"journal-{kind.split()[0]}.sqlite"
        review = Review(path, ids, labels, list(range(10)))
        relabel = timed(lambda: review.relabel(ids, int(np.random.randint(10))), repeats)
        drop = timed(lambda: review.drop(ids[: n // 2]), repeats)
        undo = timed(review.undo, repeats)
        review.close()
        reopen = timed(lambda: Review(path, ids, labels, list(range(10))).close(), 3)
        column = labels.rename("label").to_frame()
        plain = timed(lambda: fsynced(column.to_parquet, folder / "labels.parquet"), repeats)
        results[kind] = {"relabel_all_s": relabel, "drop_half_s": drop, "undo_s": undo,
                         "baseline: label column to parquet + fsync_s": plain,
                         f"reopen_{3 * repeats}_actions_s": reopen,
                         "journal_mb": round(sum(p.stat().st_size for p in folder.glob(path.name + "*")) / 2**20, 1)}
    return results


def bench_export(n: int, repeats: int, folder: Path) -> dict:
    features, labels, split, _ = fashion_rows(n)
    ds = dq.Dataset.from_arrays(features, labels, split=split)
    start = time.perf_counter()
    an = dq.analyze(ds, workdir=folder / "workdir", layout="pca", progress=False)
    analyze_s = time.perf_counter() - start
    an.review.relabel(an.samples.index, an.samples["label"].iloc[0])
    an.review.drop(an.samples.index[:5000])
    an.review.mark_ok(an.samples.index[5000:6000])
    results = {"rows": n, "analyze_s (not part of export)": round(analyze_s, 1)}
    fractions = {"train": .8, "val": .1, "test": .1}
    for fmt in ("parquet", "csv", "jsonl"):
        for how, splits in (("re-split", fractions), ("given splits", None)):
            out = folder / f"export-{fmt}-{how.replace(' ', '-')}"
            times = timed(lambda: an.export(out, format=fmt, splits=splits, overwrite=True), repeats)
            manifest = json.loads((out / "manifest.json").read_text())
            results[f"{fmt}, {how}"] = {"export_s": times, "exported_rows": manifest["counts"]["exported"],
                                        "dropped_rows": manifest["counts"]["dropped"]}
    results["baseline"] = plain_writes(folder / "export-parquet-re-split", folder / "plain", repeats)
    return results


def plain_writes(exported: Path, out: Path, repeats: int) -> dict:
    """The table the export wrote, written again with plain pandas / pyarrow calls to one file each."""
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(exported.rglob("*.parquet")))
    frame = table.to_pandas()
    out.mkdir(exist_ok=True)
    writes = {"pyarrow.parquet.write_table": lambda: pq.write_table(table, out / "a.parquet"),
              "DataFrame.to_parquet": lambda: frame.to_parquet(out / "b.parquet"),
              "DataFrame.to_csv": lambda: frame.to_csv(out / "c.csv"),
              "DataFrame.to_json(lines=True)": lambda: frame.to_json(out / "d.jsonl", orient="records", lines=True)}
    return {"rows": len(frame), "columns": frame.shape[1],
            **{name: timed(fn, repeats) for name, fn in writes.items()}}


def summarise(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.3f} (min {min(seconds):.3f}, max {max(seconds):.3f})"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="dq-bench-review-"))
    try:
        journal = bench_journal(args.n, args.repeats, folder)
        export = bench_export(args.n, max(1, args.repeats // 2 + 1), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record = {
        "benchmark": "bench_review_export",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                    "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "dqwidgets_version": dq.__version__,
        "n": args.n,
        "journal": journal,
        "export": export,
        "targets": {"relabel 100k ids in one action": "< 1 s", "export 100k rows to parquet": "< 5 s"},
    }
    lines = [f"# bench_review_export ({args.n:,} rows, {os.cpu_count()} CPUs, median of {args.repeats} repeats, "
             "seconds)", "", f"Run {record['when']} on a machine shared with other jobs: load average at start "
             f"{tuple(round(x, 2) for x in load_start)}, at end {tuple(round(x, 2) for x in os.getloadavg())}.", "",
             "| what | seconds |", "|---|---|"]
    for kind, r in journal.items():
        for key, values in r.items():
            if key.endswith("_s"):
                lines.append(f"| journal, {kind}: {key[:-2].replace('_', ' ')} | {summarise(values)} |")
        lines.append(f"| journal, {kind}: file size | {r['journal_mb']} MB |")
    for key, r in export.items():
        if isinstance(r, dict) and "export_s" in r:
            lines.append(f"| export {key} ({r['exported_rows']:,} rows written) | {summarise(r['export_s'])} |")
    base = export["baseline"]
    for key, values in base.items():
        if isinstance(values, list):
            lines.append(f"| baseline: {key}, same {base['rows']:,} rows x {base['columns']} columns, one file | "
                         f"{summarise(values)} |")
    lines.append(f"| (analyze, to get the rows to export) | {export['analyze_s (not part of export)']} |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stem = "bench_review_export" if args.n == DEFAULT_N else f"bench_review_export.n{args.n}"   # a smaller run
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=1))                      # keeps the full one
    (RESULTS / f"{stem}.md").write_text(table)
    return record


if __name__ == "__main__":
    main()
