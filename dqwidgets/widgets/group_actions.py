"""One decision, many fixes: the review actions that touch a group of samples at once.

- ``accept``: every sample gets its own ``suggested_label`` (key ``a``), one journal row
  (:meth:`dqwidgets.review.Review.relabel_many`), one undo. Samples no class fits
  (``suggested_label`` None) are left as they are and the message says how many. With "with
  duplicates" ticked, the other members of their duplicate groups get the accepted label too.
- ``with_duplicates``: a relabel, drop or mark-ok also reaches every other member of the samples'
  duplicate groups (``an.samples.duplicate_group``), in the same journal row.
- slice actions: drop or relabel every sample of a slice (a row of the slice table); the browser
  says how many samples the row shows and the kernel refuses when that is not the slice it holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqwidgets.widgets import review_panel

SLICE_ACTIONS = ("drop", "relabel")


def _who(n: int, ids: list) -> str:
    return f"{n:,} samples" if n > 1 else f"sample {ids[0]}"


def undecided(an, ids: list) -> tuple[list, int]:
    """``ids`` less those the journal has a decision for (relabelled, marked fine or dropped), and how
    many were left out: a bulk action after the odd ones out were handled one by one acts on the rest."""
    review = an.review
    index = pd.Index(ids)
    status = review.status().reindex(index).to_numpy()
    moved = index.isin(review.relabelled())
    keep = pd.isna(status) & ~moved
    return index[keep].tolist(), int((~keep).sum())


def apply_review(an, action: str, ids: list, label=None, with_duplicates: bool = False,
                 bulk: bool = False) -> str:
    """The Explorer's review actions: ``accept`` and ``with_duplicates`` here, the rest in
    :func:`dqwidgets.widgets.review_panel.apply_review`. Returns the line the panel shows.
    ``bulk`` (the panel's "all in the grid"): accept and drop leave out the samples already decided."""
    left_out = 0
    if bulk and action in ("accept", "drop"):
        ids, left_out = undecided(an, ids)
        if not ids:
            raise ValueError(f"Explorer: nothing to {action}: you have already decided all {left_out:,} of them")
    message = _apply(an, action, ids, label, with_duplicates)
    return message + (f"; {left_out:,} you had already decided were left as they are" if left_out else "")


def _apply(an, action: str, ids: list, label, with_duplicates: bool) -> str:
    if action == "accept":
        return accept_suggested(an, ids, with_duplicates)
    if not with_duplicates or action == "undo":
        return review_panel.apply_review(an, action, ids, label)
    if action not in ("relabel", "drop", "mark_ok"):
        raise ValueError(f"Explorer: unknown review action {action!r}")
    if not ids:
        raise ValueError(f"Explorer: {action} needs at least one sample; click one in the grid first")
    review = an.review
    if action == "relabel":
        lookup = review_panel.class_lookup(an.classes)
        if label not in lookup:
            raise ValueError(f"Explorer: {label!r} is not one of the classes {list(lookup)}")
        review.relabel(ids, lookup[label], with_duplicates=True)
    elif action == "drop":
        review.drop(ids, with_duplicates=True)
    else:
        review.mark_ok(ids, with_duplicates=True)
    extra = _duplicates_outside(an.samples, ids)
    done = {"relabel": f"relabelled {{}} to {label}", "drop": "dropped {}", "mark_ok": "marked {} as fine"}[action]
    return done.format(_who(len(ids), ids)) + (f" and {extra:,} duplicate(s) of them" if extra else
                                                " (no duplicates)")


def _duplicates_outside(samples: pd.DataFrame, ids: list) -> int:
    """How many members of the duplicate groups of ``ids`` are not among ``ids``."""
    if "duplicate_group" not in samples.columns:
        return 0
    codes = samples["duplicate_group"].to_numpy()
    rows = samples.index.get_indexer(pd.Index(ids))
    groups = np.unique(codes[rows])
    members = np.isin(codes, groups[groups >= 0])
    members[rows] = False
    return int(members.sum())


def accept_suggested(an, ids: list, with_duplicates: bool = False) -> str:
    """Relabel each of ``ids`` to its ``suggested_label`` in one journal row; ``with_duplicates``:
    every other member of their duplicate groups to the label accepted for its group, in that row."""
    if not ids:
        raise ValueError("Explorer: accept needs samples: select some, or click a card in the grid")
    samples = an.samples
    if "suggested_label" not in samples.columns:
        raise ValueError("Explorer: this analysis has no suggested labels (no labels or no probe)")
    index = pd.Index(ids)
    suggested = samples["suggested_label"].reindex(index)
    current = an.review.labels().reindex(index)
    none = suggested.isna().to_numpy()
    same = ~none & (suggested.astype(object).to_numpy() == current.astype(object).to_numpy())
    todo = ~none & ~same
    notes = []
    if none.any():
        notes.append(f"{int(none.sum()):,} not relabelled: no class fits them (suggested: drop)")
    if same.any():
        notes.append(f"{int(same.sum()):,} already have their suggested label")
    if not todo.any():
        raise ValueError("Explorer: nothing to accept; " + "; ".join(notes))
    accepted = index[todo].tolist()
    an.review.relabel_many(dict(zip(accepted, suggested[todo].tolist())), with_duplicates=with_duplicates)
    head = f"accepted the suggested label for {_who(len(accepted), accepted)}"
    if with_duplicates:
        extra = _duplicates_outside(samples, accepted)
        head += f" and {extra:,} duplicate(s) of them" if extra else " (no duplicates)"
    return "; ".join([head] + notes)


def slice_review(an, slice_id: int, action: str, shown_size: int, label=None) -> tuple[str, int]:
    """Drop or relabel every sample of slice ``slice_id``; refused unless the browser's row shows
    ``shown_size`` samples, the slice's size in the kernel. Returns (message, number of samples)."""
    if action not in SLICE_ACTIONS:
        raise ValueError(f"Explorer: a slice action is one of {SLICE_ACTIONS}, not {action!r}")
    samples = an.samples
    if "slice_id" not in samples.columns:
        raise ValueError("Explorer: this analysis has no slices")
    rows = np.flatnonzero(samples["slice_id"].to_numpy() == int(slice_id))
    if not len(rows):
        raise ValueError(f"Explorer: there is no slice {slice_id}; nothing was changed")
    if int(shown_size) != len(rows):
        raise ValueError(f"Explorer: refused: the slice table shows {int(shown_size):,} samples in slice {slice_id} "
                         f"but the kernel holds {len(rows):,}; nothing was changed. Reload the table and repeat.")
    ids = samples.index[rows].tolist()
    if action == "drop":
        an.review.drop(ids, note=f"slice {slice_id}")
        return f"dropped the {len(ids):,} samples of slice {slice_id}", len(ids)
    lookup = review_panel.class_lookup(an.classes)
    if label not in lookup:
        raise ValueError(f"Explorer: {label!r} is not one of the classes {list(lookup)}")
    an.review.relabel(ids, lookup[label], note=f"slice {slice_id}")
    return f"relabelled the {len(ids):,} samples of slice {slice_id} to {label}", len(ids)
