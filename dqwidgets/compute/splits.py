"""Split assignment for export: stratified fractions that never cut a duplicate group, and given
splits repaired so that no group spans two of them (train/test leakage).

Plain numpy on integer codes: ``groups`` holds a group id per sample (-1 = in no group), splits
are codes 0..S-1 in the order of preference (e.g. train, val, test).
"""

from __future__ import annotations

import numpy as np


def group_ids(groups: np.ndarray) -> np.ndarray:
    """``groups`` with -1 for every group that has a single member (nothing to keep together)."""
    groups = np.asarray(groups, dtype=np.int64).copy()
    grouped = groups >= 0
    _, inverse, counts = np.unique(groups[grouped], return_inverse=True, return_counts=True)
    ids = groups[grouped]
    ids[counts[inverse] < 2] = -1
    groups[grouped] = ids
    return groups


def split_by_fraction(strata: np.ndarray, groups: np.ndarray, fractions, seed: int = 0) -> np.ndarray:
    """Split index of every sample: each group (same ``groups`` value >= 0) in one split, each stratum
    as close to ``n_stratum * fraction`` per split as the groups allow (within one sample when no
    group overshoots).

    Groups go first, largest first (random order among equals), each to the split where its strata
    miss the most; then each stratum's single samples, shuffled, fill the remaining deficits
    (largest remainder)."""
    fractions = np.asarray(fractions, dtype=float)
    if not np.isfinite(fractions).all() or (fractions < 0).any():
        raise ValueError(f"split_by_fraction: fractions must be finite numbers >= 0, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    codes, strata = np.unique(strata, return_inverse=True)
    n_splits, n_strata = len(fractions), len(codes)
    target = fractions[:, None] * np.bincount(strata, minlength=n_strata)[None, :]
    count = np.zeros((n_splits, n_strata))
    out = np.full(len(strata), -1, dtype=np.int64)

    grouped = np.flatnonzero(groups >= 0)
    if len(grouped):
        order = grouped[np.argsort(groups[grouped], kind="stable")]
        _, starts = np.unique(groups[order], return_index=True)
        units = np.split(order, starts[1:])
        units = [units[i] for i in rng.permutation(len(units))]
        units.sort(key=len, reverse=True)
        for unit in units:
            need = np.bincount(strata[unit], minlength=n_strata)
            s = int(np.argmax(((target - count) * need[None, :]).sum(axis=1)))
            out[unit] = s
            count[s] += need

    for c in range(n_strata):
        rest = np.flatnonzero((strata == c) & (out < 0))
        rest = rest[rng.permutation(len(rest))]
        deficit = target[:, c] - count[:, c]
        take = np.maximum(np.floor(deficit), 0).astype(np.int64)
        while take.sum() > len(rest):           # groups overshot: trim the smallest deficits first
            take[np.argmax(np.where(take > 0, -(deficit - take), -np.inf))] -= 1
        for _ in range(len(rest) - int(take.sum())):
            take[int(np.argmax(deficit - take))] += 1
        out[rest] = np.repeat(np.arange(n_splits), take)
    return out


def keep_groups_together(split_codes: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Split codes with every group found in several splits moved whole into the split holding most
    of its members (ties: the lowest code, i.e. the preferred split)."""
    split_codes = np.asarray(split_codes, dtype=np.int64)
    out = split_codes.copy()
    grouped = np.flatnonzero(groups >= 0)
    if not len(grouped):
        return out
    pairs, counts = np.unique(np.stack([groups[grouped], split_codes[grouped]], 1), axis=0, return_counts=True)
    # per group, the split with the most members, the lowest code among equals
    best = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    first = np.r_[True, pairs[best[1:], 0] != pairs[best[:-1], 0]]
    group, home = pairs[best[first], 0], pairs[best[first], 1]  # group ascending
    out[grouped] = home[np.searchsorted(group, groups[grouped])]
    return out
