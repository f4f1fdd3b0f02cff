"""``manifest.json``: what an export holds and why — counts, drops by reason, relabels with the
reviewer's notes, leakage moves, thresholds, seed and the dqwidgets version."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from dqwidgets._version import __version__
from dqwidgets.missing import is_missing


def label_column(dataset, plan) -> str | None:
    """The export's label column: the dataset's; for an unlabelled dataset whose reviewer gave labels
    (``plan.labels``), ``label`` (``review_label`` where the data has a column of that name); None otherwise."""
    if dataset.label is not None:
        return dataset.label
    if not plan.labels.notna().any():
        return None
    return "review_label" if "label" in dataset.frame.columns else "label"


def manifest(dataset, review, thresholds: dict, options, plan, out: pd.DataFrame, written: dict,
             omitted: dict) -> dict:
    """The manifest of an export of ``out`` (one row per kept sample) planned by ``plan``."""
    label_col = label_column(dataset, plan)  # None: no labels, given or from the review
    per_split = {name: int((out["split"] == name).sum()) for name in plan.names}
    per_label = {}
    provenance = review.provenance()
    relabelled = []
    if label_col is not None:
        for name in plan.names:
            counts = out.loc[out["split"] == name, label_col].value_counts(dropna=False)
            per_label[name] = {str(k): int(v) for k, v in counts.items()}
        changed = out[out["id"].isin(review.relabelled())]
        why = provenance.reindex(changed["id"])
        relabelled = records(id=changed["id"], **{"from": changed[f"given_{label_col}"]}, to=changed[label_col],
                             action=why["label_action"], note=why["label_note"])
    why = provenance.reindex(plan.reasons["dropped in review"])
    journal_dropped = records(id=why.index, action=why["status_action"], note=why["status_note"])
    return {
        "dqwidgets_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "format": options.format,
        "seed": options.seed,
        "stratify": bool(options.stratify),
        "splits_requested": options.splits,
        "split_source": plan.source,
        "dataset": {"fingerprint": dataset.fingerprint, "modality": dataset.modality, "n_samples": len(dataset.frame)},
        "journal": {"path": str(review.path), "last_action": review.seq},
        "counts": {"exported": len(out), "dropped": len(plan.dropped), "per_split": per_split,
                   "per_split_label": per_label},
        "files": written,
        "dropped": {
            "flags": list(options.drop),
            "thresholds": dict(thresholds),
            "by_reason": {reason: {"count": len(idx), "ids": idx} for reason, idx in plan.reasons.items()},
            "journal": journal_dropped,
            "note": "marked-ok samples are exempt from flag drops; relabelled samples from is_label_issue",
        },
        "relabelled": {"count": len(relabelled), "samples": relabelled},   # among the exported samples
        "leakage_fixed": {"moved": len(plan.moved), "samples": plan.moved},
        "omitted_columns": omitted,
    }


def records(**columns) -> list[dict]:
    """Rows as JSON-ready dicts: plain Python scalars, missing values as None."""
    plain = {k: pd.Series(np.asarray(v, dtype=object)).where(lambda x: x.notna(), None).tolist()
             for k, v in columns.items()}
    return [dict(zip(plain, row)) for row in zip(*plain.values())]


def manifest_text(manifest: dict) -> str:
    """JSON with one line per top-level and second-level key (long id lists stay on one line; this also
    keeps the fast C encoder, which an ``indent`` would turn off)."""
    def dump(value):
        return json.dumps(value, default=_json_value, ensure_ascii=False, separators=(", ", ": "))

    lines = []
    for key, value in manifest.items():
        if isinstance(value, dict) and value:
            inner = [f"  {dump(str(k))}: {dump(v)}" for k, v in value.items()]
            lines.append(f" {dump(key)}: {{\n" + ",\n".join(inner) + "\n }")
        else:
            lines.append(f" {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Index, pd.Series, np.ndarray)):
        return value.tolist()
    if is_missing(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
