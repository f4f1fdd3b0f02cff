"""How much work is a review? A simulated reviewer who knows the truth works through a review list
and fixes what is wrong; we count decisions per fixed error and the share of planted errors fixed.

- dqwidgets: the Explorer's default review order: flagged samples first (label issues, OOD,
  duplicates), most suspicious first (the highest of the sample's calibrated label / OOD scores).
  For a label issue the reviewer presses ``a`` (accept the suggested label) when the suggestion is the
  true class, else types the true class: one decision either way; for a sample suggested "drop" the
  reviewer drops it; a flagged sample that is fine costs one "mark ok" decision. A relabel extends to
  the sample's duplicate group (one decision fixes the copies too).
- cleanlab: Datalab's ``get_issues()`` rows with any issue flagged, ranked by their lowest issue
  score (most severe first), the same reviewer: one decision per row.

An error is a planted wrong label (flipped or foreign) or a planted near-copy; a decision fixes it
when it relabels a flipped sample to its true class or drops a foreign sample or a copy.

    python bench/bench_review_effort.py [case ...]   (cases of bench_quality.py; cached features)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import RESULTS, load_case, run_cleanlab, run_ours  # noqa: E402

CASES = ["notebook01_fashion_mnist", "rotten_tomatoes", "digits_table"]


def simulate(order: np.ndarray, case, groups: np.ndarray | None = None) -> dict:
    """Walk ``order`` (sample positions, first reviewed first) and tally the decisions and fixes."""
    n = len(case.labels)
    fixed = np.zeros(n, bool)
    done = np.zeros(n, bool)
    decisions = wasted = 0
    for i in order:
        if done[i]:
            continue
        decisions += 1
        done[i] = True
        if case.is_foreign[i] or case.is_copy[i]:
            fixed[i] = True  # dropped
        elif case.is_noisy[i]:
            fixed[i] = True  # relabelled to the true class (accepted or typed)
            if groups is not None and groups[i] >= 0:  # the relabel extends to the duplicate group
                same = (groups == groups[i]) & case.is_noisy & ~done
                fixed[same] = done[same] = True
        else:
            wasted += 1  # marked ok
    errors = case.is_noisy | case.is_foreign | case.is_copy
    label_errors = case.is_noisy | case.is_foreign
    n_fixed = int((fixed & errors).sum())
    return {"decisions": decisions, "fixed": n_fixed, "wasted": wasted,
            "decisions_per_fixed_error": decisions / max(n_fixed, 1),
            "share_of_errors_fixed": n_fixed / max(errors.sum(), 1),
            "share_of_label_errors_fixed": float((fixed & label_errors).sum() / max(label_errors.sum(), 1)),
            "errors": int(errors.sum())}


def ours(case, X) -> dict:
    an, _ = run_ours(case, X)
    s = an.samples
    flagged = (s["is_label_issue"] | s["is_ood"] | s["is_duplicate"]).to_numpy()
    sus = np.fmax(s["label_issue_score"].fillna(0).to_numpy(), s["ood_score"].fillna(0).to_numpy())
    sus = np.where(s["is_duplicate"].to_numpy(), np.maximum(sus, s["duplicate_score"].fillna(0).to_numpy()), sus)
    idx = np.flatnonzero(flagged)
    order = idx[np.argsort(-sus[idx], kind="stable")]
    res = simulate(order, case, s["duplicate_group"].to_numpy())
    suggestion_right = s["suggested_label"].to_numpy()[order] == case.true_labels[order]
    res["suggestion_accepted_share"] = float(suggestion_right[case.is_noisy[order]].mean()) if case.is_noisy[order].any() else float("nan")
    return res, list(an.classes)


def cleanlab(case, X, classes) -> dict:
    lab, _ = run_cleanlab(case, X, classes)
    issues = lab.get_issues()
    flag_cols = [c for c in issues.columns if c.startswith("is_") and c.endswith("_issue")]
    score_cols = [c.replace("is_", "").replace("_issue", "_score") for c in flag_cols]
    flagged = issues[flag_cols].any(axis=1).to_numpy()
    severity = np.min(np.where(issues[flag_cols].to_numpy(), issues[score_cols].to_numpy(), 1.0), axis=1)
    idx = np.flatnonzero(flagged)
    order = idx[np.argsort(severity[idx], kind="stable")]
    return simulate(order, case)


def main(names):
    out = {}
    for name in names:
        case, X = load_case(name)
        o, classes = ours(case, X)
        out[name] = {"dqwidgets": o, "cleanlab": cleanlab(case, X, classes)}
        print(name, json.dumps(out[name], indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_review_effort.json").write_text(json.dumps(out, indent=1))
    lines = ["Simulated reviewer who knows the truth, working through the default review list (bench/bench_review_effort.py)", "",
             "| case | list | decisions | errors fixed / planted | decisions per fixed error | label errors fixed | marked ok (wasted) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in out.items():
        for tool in ("dqwidgets", "cleanlab"):
            f = r[tool]
            lines.append(f"| {name} | {tool} | {f['decisions']} | {f['fixed']} / {f['errors']} | "
                         f"{f['decisions_per_fixed_error']:.2f} | {f['share_of_label_errors_fixed']:.3f} | {f['wasted']} |")
    (RESULTS / "bench_review_effort.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:] or CASES)
