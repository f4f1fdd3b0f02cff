"""Clean splits out: the review journal and the chosen flags applied, no duplicate group across splits.

``export_analysis`` (what ``Analysis.export`` calls) writes ``path/<split>.parquet`` (``.csv``,
``.jsonl``) with an ``id`` column, or ``path/<split>/<label>/<file>`` for ``imagefolder`` (plus
``path/index.csv`` mapping ids to files), and ``path/manifest.json`` with the counts, what was
dropped and relabelled and why, the seed and the dqwidgets version.

- Drops: the samples dropped in the journal, and those with a ``True`` in any ``drop`` flag column
  (default: the issue types of ``dqwidgets.issues`` marked ``export_drops``), except samples marked
  ok in the journal (they were looked at and kept) and, for ``is_label_issue``, samples whose label
  was corrected. Unreadable files never go out.
- Splits: ``splits={"train": .8, ...}`` re-splits, keeping every duplicate group in one split
  (``compute.splits.split_by_fraction``). With ``splits=None`` the dataset's own split column is
  kept, and a duplicate group found in several splits is moved whole into the split holding most
  of it (ties: ``train`` first, then by name), every move listed in the manifest.
- Names: labels and split names become folder names only through :func:`folder_names` (``names.py``),
  so nothing can be written outside ``path``.
- Atomic: written to a hidden sibling folder renamed to ``path`` at the end (``files.py``); an
  existing export is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.compute.splits import group_ids, keep_groups_together, split_by_fraction
from dqwidgets.export.files import (ExportExistsError, existing_export_action, fsync, move_into_place,
                                    partial_folder, table_columns, write_images, write_table)
from dqwidgets.export.manifest import label_column, manifest, manifest_text
from dqwidgets.export.names import folder_names, safe_name
from dqwidgets.issues import EXPORT_DROPS
from dqwidgets.missing import plain_scalar

FORMATS = ("parquet", "csv", "jsonl", "imagefolder")
NO_SPLIT = "all"            # the one file written when the data has no splits and none are asked for
UNASSIGNED = "unassigned"   # samples whose given split is missing


@dataclass(frozen=True)
class Options:
    format: str
    drop: tuple
    splits: dict | None
    stratify: bool
    seed: int


@dataclass
class Plan:
    """What an export writes: who stays, why the others go, and the split of every kept sample."""

    reasons: dict  # reason -> ids dropped for it (a sample may have several)
    dropped: pd.Index
    keep: pd.Index
    labels: pd.Series  # current label of each kept sample
    split: pd.Series  # split name of each kept sample
    names: list  # split names, in order
    source: str  # "re-split" | "given" | "none"
    moved: list  # leakage moves: {"id", "group", "from", "to"}


def export_analysis(dataset, samples: pd.DataFrame, review, thresholds: dict, path, format: str = "parquet",
                    drop=EXPORT_DROPS, splits: dict | None = None, stratify: bool = True, seed: int = 0,
                    overwrite: bool = False) -> Path:
    """Write the cleaned ``dataset`` to ``path`` (see the module docstring); return ``path``.

    ``samples`` (flags, duplicate groups), ``review`` (the journal) and ``thresholds`` are an
    Analysis' own; ``Analysis.export(path, ...)`` passes them."""
    started = time.perf_counter()
    options = Options(format, _drop_flags(samples, drop), splits, stratify, seed)
    path = _check_arguments(dataset, path, options)
    existing_export_action(path, overwrite)
    plan = _plan(dataset, samples, review, options)
    split_dirs = folder_names(plan.names)
    out = _rows(dataset, plan)

    tmp = partial_folder(path)
    try:
        omitted, written, folders = {}, {}, []
        if format == "imagefolder":
            label_dirs = folder_names(plan.labels.unique())
            label_col = label_column(dataset, plan) or "label"
            files = write_images(dataset, out, tmp, split_dirs, label_dirs, label_col)
            out[["id", "split", label_col]].assign(file=files).to_csv(tmp / "index.csv", index=False)
            written = {name: f"{split_dirs[name]}/" for name in plan.names}
            folders = [{"label": plain_scalar(label), "folder": folder} for label, folder in label_dirs.items()]
        else:
            table, omitted = table_columns(out, format, dataset.image)
            for name in plan.names:
                part = table[table["split"] == name].drop(columns="split")
                write_table(part.reset_index(drop=True), tmp / f"{split_dirs[name]}.{format}", format)
                written[name] = f"{split_dirs[name]}.{format}"
        info = manifest(dataset, review, thresholds, options, plan, out, written, omitted)
        info["seconds"] = round(time.perf_counter() - started, 3)
        if folders:
            info["label_folders"] = folders
        (tmp / "manifest.json").write_text(manifest_text(info), encoding="utf-8")
        fsync(tmp / "manifest.json")
        move_into_place(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ---------------------------------------------------------------------------------------- checks
def _drop_flags(samples: pd.DataFrame, drop) -> tuple:
    drop = (drop,) if isinstance(drop, str) else tuple(drop or ())
    flags = [c for c in samples.columns if str(c).startswith("is_")]
    for flag in drop:
        if flag not in samples.columns:
            raise ValueError(f"export: drop flag {flag!r} is not a column of an.samples; flags there: {flags}")
        if not pd.api.types.is_bool_dtype(samples[flag]):
            raise ValueError(f"export: drop flag {flag!r} must be a boolean column (is_*), "
                             f"it has dtype {samples[flag].dtype}")
    return drop


def _check_arguments(dataset, path, options: Options) -> Path:
    if options.format not in FORMATS:
        raise ValueError(f"export: format must be one of {FORMATS}, got {options.format!r}")
    if options.splits is not None:
        if not isinstance(options.splits, dict) or not options.splits:
            raise ValueError('export: splits must be a dict like {"train": .8, "val": .1, "test": .1}')
        try:
            fractions = np.array([float(f) for f in options.splits.values()])
        except (TypeError, ValueError):
            raise ValueError(f"export: split fractions must be numbers, got {dict(options.splits)}") from None
        if not np.isfinite(fractions).all() or (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-6:
            raise ValueError(f"export: split fractions must be >= 0 and sum to 1, got {dict(options.splits)}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExportExistsError(f"export: {path} is a file; pass a folder path for the export")
    if options.format == "imagefolder" and not dataset.image:
        raise ValueError(f"export: format='imagefolder' needs images, this dataset has none "
                         f"(modality {dataset.modality!r}); use format='parquet'")
    return path


# ---------------------------------------------------------------------------------------- what goes out
def _plan(dataset, samples: pd.DataFrame, review, options: Options) -> Plan:
    ids = dataset.frame.index
    # an unlabelled dataset has the labels its reviewer gave (None elsewhere)
    reasons = _drop_reasons(samples, review, options.drop)
    labels = review.labels().reindex(ids)
    if options.format == "imagefolder":
        reasons["unlabelled (imagefolder needs a label)"] = ids[labels.isna().to_numpy()]
    dropped = pd.Index([], dtype=ids.dtype).append(list(reasons.values())).unique()
    keep = ids[~ids.isin(dropped)]
    kept_labels = labels.reindex(keep)
    split, names, source, moved = _assign_splits(dataset, samples, keep, kept_labels, options)
    return Plan(reasons, dropped, keep, kept_labels, split, names, source, moved)


def _drop_reasons(samples: pd.DataFrame, review, drop) -> dict[str, pd.Index]:
    """reason -> ids dropped for it. A sample may have several reasons."""
    reasons = {"dropped in review": review.dropped()}
    ok = review.marked_ok()
    corrected = review.relabelled()
    for flag in drop:
        flagged = samples.index[samples[flag].fillna(False).to_numpy(dtype=bool)]
        exempt = ok.union(corrected) if flag == "is_label_issue" else ok
        reasons[flag] = flagged.difference(exempt, sort=False)
    if "is_unreadable" in samples and "is_unreadable" not in drop:
        # a file that cannot be decoded is never part of a clean dataset, whatever the flags chosen
        reasons["is_unreadable"] = samples.index[samples["is_unreadable"].fillna(False).to_numpy(dtype=bool)]
    return reasons


def _split_order(names) -> list:
    names = sorted(set(names), key=str)
    return sorted(names, key=lambda n: (str(n) != "train", str(n) != "val", str(n) != "test", str(n)))


def _assign_splits(dataset, samples, keep: pd.Index, kept_labels: pd.Series, options: Options):
    """(split of every kept sample, split names in order, "re-split" | "given" | "none", leakage moves)."""
    groups = group_ids(samples["duplicate_group"].reindex(keep).fillna(-1).to_numpy(dtype=np.int64)) \
        if "duplicate_group" in samples.columns else np.full(len(keep), -1, dtype=np.int64)
    if options.splits is not None:
        names = list(options.splits)
        strata = (kept_labels.map(lambda v: f"{type(v).__name__}:{v}").to_numpy(dtype=str) if options.stratify
                  else np.zeros(len(keep), dtype=str))
        chosen = split_by_fraction(strata, groups, list(options.splits.values()), options.seed)
        return pd.Series(np.asarray(names, dtype=object)[chosen], index=keep), names, "re-split", []
    if dataset.split is None:
        return pd.Series(NO_SPLIT, index=keep, dtype=object), [NO_SPLIT], "none", []
    given = dataset.frame[dataset.split].reindex(keep).astype(object).where(lambda s: s.notna(), UNASSIGNED)
    names = _split_order(given.unique())
    codes = pd.Index(names).get_indexer(given.to_numpy())
    home = keep_groups_together(codes, groups)
    order = np.lexsort((np.arange(len(keep)), groups))
    moved = [{"id": keep[i], "group": int(groups[i]), "from": names[codes[i]], "to": names[home[i]]}
             for i in order if home[i] != codes[i]]
    split = pd.Series(np.asarray(names, dtype=object)[home], index=keep)
    return split, _split_order(split.unique()), "given", moved


def _rows(dataset, plan: Plan) -> pd.DataFrame:
    """id, split, current and given label, then the dataset's own columns, one row per kept sample."""
    label_col = label_column(dataset, plan)
    out = dataset.frame.drop(columns=[c for c in (dataset.label, dataset.split) if c]).reindex(plan.keep)
    if label_col is not None:
        given = dataset.frame[dataset.label].reindex(plan.keep).to_numpy() if dataset.label is not None \
            else np.full(len(plan.keep), None, dtype=object)
        out.insert(0, f"given_{label_col}", given)
        out.insert(0, label_col, plan.labels.to_numpy())
    out = out.rename(columns={"id": "id_column", "split": "split_column"})
    out.insert(0, "split", plan.split.to_numpy())
    out.insert(0, "id", plan.keep.to_numpy())
    return out.reset_index(drop=True)


__all__ = ["ExportExistsError", "FORMATS", "export_analysis", "folder_names", "safe_name"]
