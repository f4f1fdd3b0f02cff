"""The label step's noise model with its calibration (temperature and class biases) fitted on a sample of the labelled rows
(``compute.label.TEMPERATURE_ROWS`` = 100,000) vs on every row: seconds, temperature, flags and their
precision on planted 10% flips (10 classes, a synthetic probe), at 300k and 1M rows.

    python bench/bench_label_temperature.py            # writes bench/results/bench_label_temperature.{json,md}
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

import dqwidgets.compute.label as label
from dqwidgets.compute.calibration import expected_f1_count

RESULTS = Path(__file__).parent / "results"


def case(n: int, C: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    flip = rng.random(n) < 0.1
    given = np.where(flip, (y + rng.integers(1, C, n)) % C, y)
    logit = rng.normal(0, 1, (n, C))
    logit[np.arange(n), y] += 3.0
    p = np.exp(logit)
    return (p / p.sum(1, keepdims=True)).astype(np.float32), given, flip


def main():
    rows = []
    for n in (300_000, 1_000_000):
        p, given, flip = case(n)
        got = {}
        for name, fit_rows in (("every row", 10 ** 12), ("sample of 100,000", 100_000)):
            label.TEMPERATURE_ROWS = fit_rows
            t = time.perf_counter()
            post, _, temp, _ = label.fit_noise_model(p, given)
            sec = time.perf_counter() - t
            score = 1 - post[np.arange(n), given]
            flags = np.argsort(-score)[:expected_f1_count(score)]
            got[name] = set(flags.tolist())
            rows.append({"n": n, "temperature_rows": name, "seconds": sec, "temperature": temp,
                         "flags": len(flags), "precision": float(flip[flags].mean()),
                         "recall": float(flip[flags].sum() / flip.sum())})
        rows[-1]["flag_overlap_with_every_row"] = len(got["every row"] & got["sample of 100,000"]) / len(got["every row"])
    RESULTS.mkdir(exist_ok=True)
    meta = {"loadavg": os.getloadavg(), "cpus": os.cpu_count(), "rows": rows}
    (RESULTS / "bench_label_temperature.json").write_text(json.dumps(meta, indent=1))
    lines = ["# The noise model's temperature on a sample of rows (bench/bench_label_temperature.py)", "",
             f"{os.cpu_count()} CPUs, load average {[round(v, 2) for v in os.getloadavg()]}", "",
             "| N | temperature searched on | fit_noise_model s | temperature | flags | precision | recall | flag overlap |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ov = r.get("flag_overlap_with_every_row")
        lines.append(f"| {r['n']:,} | {r['temperature_rows']} | {r['seconds']:.2f} | {r['temperature']:.4f} | "
                     f"{r['flags']:,} | {r['precision']:.4f} | {r['recall']:.4f} | {'' if ov is None else f'{ov:.4f}'} |")
    (RESULTS / "bench_label_temperature.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
