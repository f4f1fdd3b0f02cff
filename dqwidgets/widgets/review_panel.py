"""What the review panel's buttons and keys do: each action goes to ``an.review`` at once."""

from __future__ import annotations

import numpy as np

ACTIONS = ("relabel", "drop", "mark_ok", "undo")


def class_lookup(classes) -> dict:
    """Class names as the browser shows them (text) -> the class values the journal stores."""
    return {str(c): c for c in (classes or [])}


def apply_review(an, action: str, ids: list, label: str | None = None) -> str:
    """Run one review action and say what was done (the panel shows this line)."""
    review = getattr(an, "review", None)
    if review is None:
        raise ValueError("Explorer: this analysis has no review journal (an.review is None)")
    if action not in ACTIONS:
        raise ValueError(f"Explorer: unknown review action {action!r}; expected one of {ACTIONS}")
    if action == "undo":
        review.undo()  # raises ValueError("undo: nothing to undo"), which the panel shows
        return "undid the last action"
    if not ids:
        raise ValueError(f"Explorer: {action} needs at least one sample; click one in the grid first")
    who = f"{len(ids):,} samples" if len(ids) > 1 else f"sample {ids[0]}"
    if action == "relabel":
        lookup = class_lookup(getattr(an, "classes", None))
        if label not in lookup:
            raise ValueError(f"Explorer: {label!r} is not one of the classes {list(lookup)}")
        review.relabel(ids, lookup[label])
        return f"relabelled {who} to {label}"
    if action == "drop":
        review.drop(ids)
        return f"dropped {who}"
    review.mark_ok(ids)
    return f"marked {who} as fine"


def ids_of_rows(an, rows) -> list:
    rows = np.asarray(rows, dtype=np.int64)
    n = len(an.samples)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"Explorer: row numbers must be in 0..{n - 1}")
    return an.samples.index[rows].tolist()
