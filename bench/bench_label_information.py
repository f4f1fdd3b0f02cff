"""When do the features tell anything about the labels? ``compute.label.label_information`` decides
whether label issues are scored at all (the evidence's mean gain over the class shares, in standard
errors; not above ``Z_INFORMATION``: no score, no flags, a warning). This bench runs ``dq.analyze`` on
data whose features do NOT predict the labels (constant, identical rows, random, rows shuffled against
the labels, a label per sample) and on data whose features do (Gaussian blobs, clean and with noisy
labels), each with the rule as shipped and with the rule switched off (what the label step flagged
before it), and reports the gain, its z, and the label flags with their precision where a truth exists.

    python bench/bench_label_information.py
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def cases():
    rng = np.random.default_rng(0)
    out = []
    for c, n in ((2, 2000), (3, 300), (10, 2000)):
        y = rng.integers(0, c, n)
        out.append((f"random features, {c} classes, n={n}", rng.normal(size=(n, 32)).astype(np.float32), y, None))
    y = rng.integers(0, 3, 300)
    out.append(("constant features", np.ones((300, 16), np.float32), y, None))
    out.append(("identical rows", np.tile(rng.normal(size=(1, 16)).astype(np.float32), (300, 1)), y, None))
    out.append(("one class per sample", rng.normal(size=(300, 16)).astype(np.float32), np.arange(300), None))
    centers = rng.normal(0, 3, (3, 16))
    y = rng.integers(0, 3, 600)
    X = (centers[y] + rng.normal(size=(600, 16))).astype(np.float32)
    flip = rng.random(600) < 0.1
    noisy = np.where(flip, (y + rng.integers(1, 3, 600)) % 3, y)
    out.append(("blobs, rows shuffled against the labels", X[rng.permutation(600)], noisy, None))
    out.append(("blobs, 10% flipped labels", X, noisy, flip))
    y2 = rng.integers(0, 2, 2000)
    X2 = (rng.normal(0, 0.6, (2, 16))[y2] + rng.normal(size=(2000, 16))).astype(np.float32)
    flip2 = rng.random(2000) < 0.3
    out.append(("two weak blobs, 30% flipped labels", X2, np.where(flip2, 1 - y2, y2), flip2))
    return out


def run(X, y, guard: bool):
    import dqwidgets as dq
    import dqwidgets.analysis as A
    import dqwidgets.compute.label as L

    saved = (L.Z_INFORMATION, A.Z_INFORMATION)
    if not guard:
        L.Z_INFORMATION = A.Z_INFORMATION = -np.inf
    try:
        with tempfile.TemporaryDirectory() as w, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            an = dq.analyze(dq.Dataset.from_arrays(X, y), layout="pca", progress=False, workdir=w)
    finally:
        L.Z_INFORMATION, A.Z_INFORMATION = saved
    return an


def main():
    rows = []
    for name, X, y, truth in cases():
        on, off = run(X, y, True), run(X, y, False)
        row = {"case": name, "n": len(y), "gain": on.info["label_information"], "z": on.info["label_information_z"],
               "flags": int(on.samples["is_label_issue"].sum()), "flags_without_rule": int(off.samples["is_label_issue"].sum())}
        for key, an in (("precision", on), ("precision_without_rule", off)):
            f = an.samples["is_label_issue"].to_numpy()
            row[key] = float(truth[f].mean()) if truth is not None and f.any() else None
        rows.append(row)
        print(row, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_label_information.json").write_text(json.dumps({"cases": rows}, indent=1))
    f = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["Label issues are scored only where the features predict the labels (python bench/bench_label_information.py;",
             "compute.label.label_information: gain = mean log p(y|x) - log share(y) of the temperature-scaled evidence,",
             "z = gain in standard errors; not above 3: no score). Flags with the rule and with it switched off.", "",
             "| case | n | gain (nats) | z | label flags | precision | flags without the rule | precision without |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']:,} | {r['gain']:.4f} | {r['z']:.1f} | {r['flags']:,} | {f(r['precision'])} | "
                     f"{r['flags_without_rule']:,} | {f(r['precision_without_rule'])} |")
    (RESULTS / "bench_label_information.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
