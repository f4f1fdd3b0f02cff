"""Spurious correlations: which metadata values predict a label far more than chance.

For every (attribute, value, label) triple we build the 2 x 2 table "has the value" x "has the
label" and score the association by its phi coefficient (Matthews correlation; Yule 1912,
Cramér 1946) shrunk towards 0 for small support:

    phi   = (n * n_vl - n_v * n_l) / sqrt(n_v (n - n_v) n_l (n - n_l))
    score = max(phi, 0) * n_vl / (n_vl + shrinkage)

phi is 1 only when the value and the label pick out exactly the same samples, and it is the
geometric mean of informedness P(v|l) - P(v|not l) and markedness P(l|v) - P(l|not v), so it is
high only when the value predicts the label *and* the label predicts the value. That separates a
shortcut tied to one class (a watermark on nearly every "Bag") from a property in which every class
differs a little (brightness): a brightness bin is shared by several classes and covers only part
of each, so neither direction is strong. Lift alone would rank a rare value that happens to fall in
one class first; phi and the shrinkage keep rare values down.

For each triple we also report the groups that break the pattern (value without the label, label
without the value) and the probe's accuracy on them: a large gap between ``accuracy_following`` and
``worst_group_accuracy`` means the model leans on the shortcut (Sagawa, Koh, Hashimoto & Liang,
"Distributionally Robust Neural Networks for Group Shifts", ICLR 2020).
"""

from __future__ import annotations

import numpy as np

MAX_LEVELS = 20


def _format_number(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.3g}"


def _missing_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.fromiter(
            (v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType") for v in values),
            dtype=bool,
            count=values.size,
        )
    return np.zeros(values.size, dtype=bool)


def _as_float(values: np.ndarray, missing: np.ndarray) -> np.ndarray | None:
    """Float view of a numeric column, or None when some present value is not a number."""
    if values.dtype.kind in "iuf":
        return values.astype(np.float64)
    if values.dtype.kind != "O":
        return None
    present = values[~missing]
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in present):
        return None
    out = np.full(values.size, np.nan)
    out[~missing] = present.astype(np.float64)
    return out


def _quantile_bins(x: np.ndarray, missing: np.ndarray, n_bins: int) -> tuple[np.ndarray, list[str]]:
    present = x[~missing]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1]))
    edges = edges[edges > present.min()]  # a bin "< min" would be empty
    labels = [_format_number(e) for e in edges]
    names = [f"<{labels[0]}"] + [f"{a}–{b}" for a, b in zip(labels[:-1], labels[1:])] + [f"≥{labels[-1]}"]
    codes = np.full(x.size, -1, dtype=np.int64)
    codes[~missing] = np.searchsorted(edges, present, side="right")
    return codes, names


def encode_attribute(
    values: np.ndarray, max_levels: int = MAX_LEVELS, n_bins: int = 5
) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 = missing) and readable value names for one metadata column.

    Booleans and columns with at most ``max_levels`` distinct values are kept as categories
    (names sorted). Numeric columns with more distinct values are cut into ``n_bins`` quantile
    bins named ``"<0.31"``, ``"0.31–0.55"``, ..., ``"≥0.82"``. Text columns with more levels keep
    the ``max_levels - 1`` most frequent ones and put the rest in ``"(other)"``.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"encode_attribute: expected one value per sample (1-D), got shape {values.shape}")
    if values.dtype.kind in "mM":
        values = values.astype("datetime64[s]").astype(np.int64).astype(object)
    missing = _missing_mask(values)
    codes = np.full(values.size, -1, dtype=np.int64)
    if missing.all():
        return codes, []

    numeric = None if values.dtype.kind == "b" else _as_float(values, missing)
    if numeric is not None:
        missing = missing | ~np.isfinite(numeric)
        if missing.all():
            return codes, []
        levels, inverse = np.unique(numeric[~missing], return_inverse=True)
        if levels.size > max_levels:
            return _quantile_bins(numeric, missing, n_bins)
        codes[~missing] = inverse
        return codes, [_format_number(v) for v in levels]

    text = np.array([str(v) for v in values[~missing]], dtype=object)
    levels, inverse, counts = np.unique(text, return_inverse=True, return_counts=True)
    if levels.size <= max_levels:
        codes[~missing] = inverse
        return codes, [str(v) for v in levels]
    keep = np.sort(np.argsort(-counts, kind="stable")[: max_levels - 1])
    remap = np.full(levels.size, len(keep), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    codes[~missing] = remap[inverse]
    return codes, [str(levels[i]) for i in keep] + ["(other)"]


def spurious_associations(
    attributes: dict[str, tuple[np.ndarray, list[str]]],
    label_codes: np.ndarray,
    class_names: list,
    correct: np.ndarray,
    shrinkage: float = 5.0,
) -> dict[str, np.ndarray]:
    """Rank every (attribute, value, label) triple by how much more the value predicts the label
    than chance (see the module docstring for the score and its papers).

    ``attributes`` maps a column name to ``(codes, names)`` from :func:`encode_attribute`;
    ``label_codes`` are 0..C-1 (-1 = unlabelled, left out); ``correct`` says whether the probe's
    out-of-fold prediction equals the given label. Returns columns ``attribute, value, label,
    support, n_value, p_label_given_value, p_label, lift, score, n_breaking, worst_group_accuracy,
    accuracy_following``, one row per triple that occurs at least once, sorted by ``score``
    (descending). ``worst_group_accuracy`` is the lower of the probe's accuracies on the two groups
    that break the pattern (value without the label, label without the value); NaN when both are empty.
    """
    label_codes = np.asarray(label_codes, dtype=np.int64)
    correct = np.asarray(correct, dtype=bool)
    n_classes = len(class_names)
    if correct.shape != label_codes.shape:
        raise ValueError(
            f"spurious_associations: correct has {correct.size} entries, label_codes {label_codes.size}; "
            "pass one entry per sample"
        )
    if label_codes.size and label_codes.max() >= n_classes:
        raise ValueError(
            f"spurious_associations: label code {int(label_codes.max())} but only {n_classes} class names"
        )
    columns: dict[str, list] = {c: [] for c in (
        "attribute", "value", "label", "support", "n_value", "p_label_given_value", "p_label", "lift",
        "score", "n_breaking", "worst_group_accuracy", "accuracy_following")}
    for attribute, (codes, names) in attributes.items():
        codes = np.asarray(codes, dtype=np.int64)
        if codes.shape != label_codes.shape:
            raise ValueError(
                f"spurious_associations: attribute {attribute!r} has {codes.size} codes for {label_codes.size} samples"
            )
        use = (codes >= 0) & (label_codes >= 0)
        n = int(use.sum())
        if n == 0 or len(names) == 0:
            continue
        cell = codes[use] * n_classes + label_codes[use]
        size = len(names) * n_classes
        table = np.bincount(cell, minlength=size).reshape(len(names), n_classes).astype(np.float64)
        right = np.bincount(cell, weights=correct[use].astype(np.float64), minlength=size).reshape(table.shape)
        n_v = table.sum(axis=1, keepdims=True)
        n_l = table.sum(axis=0, keepdims=True)
        right_v = right.sum(axis=1, keepdims=True)
        right_l = right.sum(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = np.sqrt(n_v * (n - n_v) * n_l * (n - n_l))
            phi = np.where(denom > 0, (n * table - n_v * n_l) / denom, 0.0)
            score = np.clip(phi, 0.0, 1.0) * table / (table + shrinkage)
            p_l_given_v = table / n_v
            p_l = np.broadcast_to(n_l / n, table.shape)
            value_only = n_v - table
            label_only = n_l - table
            acc_value_only = np.where(value_only > 0, (right_v - right) / value_only, np.nan)
            acc_label_only = np.where(label_only > 0, (right_l - right) / label_only, np.nan)
            worst = np.fmin(acc_value_only, acc_label_only)
            following = right / table
        v_idx, l_idx = np.nonzero(table > 0)
        columns["attribute"].append(np.full(v_idx.size, attribute, dtype=object))
        columns["value"].append(np.array([names[i] for i in v_idx], dtype=object))
        columns["label"].append(np.array([class_names[i] for i in l_idx], dtype=object))
        columns["support"].append(table[v_idx, l_idx].astype(np.int64))
        columns["n_value"].append(n_v[v_idx, 0].astype(np.int64))
        columns["p_label_given_value"].append(p_l_given_v[v_idx, l_idx])
        columns["p_label"].append(p_l[v_idx, l_idx])
        columns["lift"].append(p_l_given_v[v_idx, l_idx] / p_l[v_idx, l_idx])
        columns["score"].append(score[v_idx, l_idx])
        columns["n_breaking"].append((value_only + label_only)[v_idx, l_idx].astype(np.int64))
        columns["worst_group_accuracy"].append(worst[v_idx, l_idx])
        columns["accuracy_following"].append(following[v_idx, l_idx])
    dtypes = {"attribute": object, "value": object, "label": object, "support": np.int64, "n_value": np.int64,
              "n_breaking": np.int64}
    out = {
        name: (np.concatenate(parts) if parts else np.zeros(0, dtype=dtypes.get(name, np.float64)))
        for name, parts in columns.items()
    }
    order = np.lexsort((-out["support"], -out["score"]))
    return {name: col[order] for name, col in out.items()}
