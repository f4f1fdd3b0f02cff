"""Clean splits out: the review journal and the chosen flags applied, no duplicate group across splits.

``export_analysis`` (what ``Analysis.export`` calls) writes ``path/<split>.parquet`` (``.csv``,
``.jsonl``) with an ``id`` column, or ``path/<split>/<label>/<file>`` for ``imagefolder`` (plus
``path/index.csv`` mapping ids to files), and ``path/manifest.json`` with the counts, what was
dropped and relabelled and why, the seed and the dqwidgets version.

- Drops: the samples dropped in the journal, and those with a ``True`` in any ``drop`` flag column,
  except samples marked ok in the journal (they were looked at and kept) and, for
  ``is_label_issue``, samples whose label was corrected.
- Splits: ``splits={"train": .8, ...}`` re-splits, keeping every duplicate group in one split
  (groups are placed first, each where its labels are most missing; then the single samples of each
  label fill every split up to its target, which puts each label within one sample of
  ``n_label * fraction`` when groups are small). With ``splits=None`` the dataset's own split column
  is kept, and a duplicate group found in several splits is moved whole into the split holding most
  of it (ties: ``train`` first, then by name), every move listed in the manifest.
- Names: labels and split names become folder names only through :func:`folder_names`, which
  removes separators, NUL, control characters, leading dots and reserved device names and adds a
  short hash whenever a name had to change or two names would collide, so nothing can be written
  outside ``path``.
- Atomic: everything is written to a hidden sibling folder that is renamed to ``path`` at the end;
  an existing export is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import unicodedata
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.issues import EXPORT_DROPS

FORMATS = ("parquet", "csv", "jsonl", "imagefolder")
NO_SPLIT = "all"            # the one file written when the data has no splits and none are asked for
UNASSIGNED = "unassigned"   # samples whose given split is missing
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_UNSAFE = set('/\\:*?"<>|')


class ExportExistsError(FileExistsError, ValueError):
    """The export folder already exists and ``overwrite`` was not set."""


# ---------------------------------------------------------------------------------------- names
def safe_name(value, max_bytes: int = 120) -> str:
    """One path component made from ``value``: no separators, NUL, control characters, leading or
    trailing dots/spaces, or Windows device names; at most ``max_bytes`` of UTF-8."""
    text = unicodedata.normalize("NFC", str(value))
    text = "".join("_" if ch in _UNSAFE or ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    text = text.strip(" .")
    if text.split(".")[0].upper() in _RESERVED:
        text = "_" + text
    text = text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") or "_"
    return text


def folder_names(values) -> dict:
    """Map each value to a distinct safe folder name (distinct even on case-insensitive file systems).

    A name that had to change, or that two values share, gets ``~`` and 8 hex digits of a hash of
    the value (its type included, so ``1`` and ``"1"`` stay apart)."""
    values = list(dict.fromkeys(values))
    base = {v: safe_name(v) for v in values}
    seen: dict[str, int] = {}
    for name in base.values():
        seen[name.casefold()] = seen.get(name.casefold(), 0) + 1
    out = {}
    for v, name in base.items():
        if name != str(v) or seen[name.casefold()] > 1:
            digest = hashlib.sha1(f"{type(v).__name__}:{v}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
            name = f"{safe_name(v, 110)}~{digest}"
        out[v] = name
    if len({n.casefold() for n in out.values()}) != len(out):
        raise ValueError("export: two labels map to the same folder name even after hashing; rename one of them")
    return out


# ---------------------------------------------------------------------------------------- checks
def _check_arguments(an, path, format, drop, splits):
    if format not in FORMATS:
        raise ValueError(f"export: format must be one of {FORMATS}, got {format!r}")
    if isinstance(drop, str):
        drop = (drop,)
    drop = tuple(drop or ())
    samples = an.samples
    flags = [c for c in samples.columns if str(c).startswith("is_")]
    for flag in drop:
        if flag not in samples.columns:
            raise ValueError(f"export: drop flag {flag!r} is not a column of an.samples; flags there: {flags}")
        if not pd.api.types.is_bool_dtype(samples[flag]):
            raise ValueError(f"export: drop flag {flag!r} must be a boolean column (is_*), "
                             f"it has dtype {samples[flag].dtype}")
    if splits is not None:
        if not isinstance(splits, dict) or not splits:
            raise ValueError('export: splits must be a dict like {"train": .8, "val": .1, "test": .1}')
        fractions = np.array([float(f) for f in splits.values()])
        if (fractions < 0).any() or abs(fractions.sum() - 1) > 1e-6:
            raise ValueError(f"export: split fractions must be >= 0 and sum to 1, got {dict(splits)}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExportExistsError(f"export: {path} is a file; pass a folder path for the export")
    return path, drop


def _existing_export_action(path: Path, overwrite: bool) -> str:
    """'create' (nothing there or an empty folder) or 'replace' (an earlier export, overwrite=True)."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return "create"
    if not overwrite:
        raise ExportExistsError(f"export: {path} already exists; pass overwrite=True to replace it "
                                "or choose another folder")
    if not (path / "manifest.json").is_file():
        raise ExportExistsError(f"export: {path} is not a dqwidgets export (no manifest.json); "
                                "refusing to replace it even with overwrite=True")
    return "replace"


# ---------------------------------------------------------------------------------------- what goes out
def _drop_reasons(an, drop, labelled) -> dict[str, pd.Index]:
    """reason -> ids dropped for it. A sample may have several reasons."""
    review, samples = an.review, an.samples
    reasons = {"dropped in review": review.dropped()}
    ok = review.marked_ok()
    corrected = review.relabelled() if labelled else pd.Index([])
    for flag in drop:
        flagged = samples.index[samples[flag].fillna(False).to_numpy(dtype=bool)]
        exempt = ok.union(corrected) if flag == "is_label_issue" else ok
        reasons[flag] = flagged.difference(exempt, sort=False)
    if "is_unreadable" in samples and "is_unreadable" not in drop:
        # a file that cannot be decoded is never part of a clean dataset, whatever the flags chosen
        reasons["is_unreadable"] = samples.index[samples["is_unreadable"].fillna(False).to_numpy(dtype=bool)]
    return reasons


def _group_ids(samples: pd.DataFrame, keep: pd.Index) -> np.ndarray:
    """Duplicate group of every kept sample (-1 = none, or the only kept member of its group)."""
    if "duplicate_group" not in samples.columns:
        return np.full(len(keep), -1, dtype=np.int64)
    groups = np.array(samples["duplicate_group"].reindex(keep).fillna(-1), dtype=np.int64)
    members = pd.Series(groups).value_counts()
    groups[pd.Series(groups).map(members).to_numpy() < 2] = -1
    return groups


def split_by_fraction(strata: np.ndarray, groups: np.ndarray, fractions, seed: int = 0) -> np.ndarray:
    """Split index of every sample: each group (same ``groups`` value >= 0) in one split, each stratum
    as close to ``n_stratum * fraction`` per split as the groups allow (within one sample when no
    group overshoots).

    Groups go first, largest first (random order among equals), each to the split where its strata
    miss the most; then each stratum's single samples, shuffled, fill the remaining deficits
    (largest remainder)."""
    fractions = np.asarray(fractions, dtype=float)
    rng = np.random.default_rng(seed)
    codes, strata = np.unique(strata, return_inverse=True)
    n_splits, n_strata = len(fractions), len(codes)
    target = fractions[:, None] * np.bincount(strata, minlength=n_strata)[None, :]
    count = np.zeros((n_splits, n_strata))
    out = np.full(len(strata), -1, dtype=np.int64)

    grouped = np.flatnonzero(groups >= 0)
    if len(grouped):
        order = grouped[np.argsort(groups[grouped], kind="stable")]
        names, starts = np.unique(groups[order], return_index=True)
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


def _split_order(names) -> list:
    names = sorted(set(names), key=str)
    return sorted(names, key=lambda n: (str(n) != "train", str(n) != "val", str(n) != "test", str(n)))


def _keep_groups_together(given: pd.Series, groups: np.ndarray) -> tuple[pd.Series, list[dict]]:
    """Move every duplicate group found in several given splits whole into the split holding most of it."""
    split = given.copy()
    rank = {name: i for i, name in enumerate(_split_order(split.unique()))}
    moved = []
    frame = pd.DataFrame({"split": split.to_numpy(), "group": groups}, index=split.index)
    frame = frame[frame["group"] >= 0]
    spread = frame.groupby("group")["split"].nunique()
    leaking = frame[frame["group"].isin(spread.index[spread > 1])]
    for group, members in leaking.groupby("group", sort=True):
        sizes = members["split"].value_counts()
        home = min(sizes.index, key=lambda name: (-sizes[name], rank[name]))
        for sample_id, was in members["split"].items():
            if was != home:
                moved.append({"id": sample_id, "group": int(group), "from": was, "to": home})
                split[sample_id] = home
    return split, moved


# ---------------------------------------------------------------------------------------- media
def _png_bytes(image) -> bytes:
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        image = bytes(image)
        if image.startswith(b"\x89PNG\r\n\x1a\n"):
            return image
        image = Image.open(io.BytesIO(image))
        image.load()
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            array = array.astype(np.float64)
            if np.nanmax(array) <= 1.0:
                array = array * 255.0
            array = np.clip(np.nan_to_num(array), 0, 255).round().astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _source_path(value, root) -> Path:
    p = Path(value)
    return p if p.is_absolute() or root is None else Path(root) / p


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _unique_file_name(name: str, taken: set) -> str:
    stem, dot, ext = name.rpartition(".")
    stem, ext = (stem, dot + ext) if dot and stem else (name, "")
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    taken.add(candidate.casefold())
    return candidate


def _table_columns(frame: pd.DataFrame, format: str, image_col) -> tuple[pd.DataFrame, dict]:
    """Columns that the format can hold; images as PNG bytes in parquet. Returns (frame, omitted->why)."""
    omitted = {}
    for col in list(frame.columns):
        values = frame[col]
        if values.dtype != object:
            continue
        sample = next((v for v in values if v is not None and not (isinstance(v, float) and v != v)), None)
        if sample is None or isinstance(sample, (str, int, float, bool, np.generic)):
            continue
        if _is_path(sample):
            frame[col] = values.map(lambda v: None if v is None else os.fspath(v))
        elif format == "parquet" and (col == image_col or isinstance(sample, (bytes, bytearray))):
            frame[col] = values.map(lambda v: None if v is None else _png_bytes(v) if col == image_col else bytes(v))
        else:
            why = "images" if col == image_col else type(sample).__name__
            omitted[str(col)] = f"holds {why}, which {format} cannot store: export as parquet or imagefolder"
            frame = frame.drop(columns=col)
    return frame, omitted


# ---------------------------------------------------------------------------------------- writing
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_table(frame: pd.DataFrame, target: Path, format: str) -> None:
    if format == "parquet":
        frame.to_parquet(target, index=False)
    elif format == "csv":
        frame.to_csv(target, index=False)
    else:
        frame.to_json(target, orient="records", lines=True, force_ascii=False)
    _fsync(target)


def _write_images(an, out: pd.DataFrame, tmp: Path, split_dirs: dict, label_dirs: dict, label_col: str) -> list:
    ds = an.dataset
    column = ds.frame[ds.image].reindex(out["id"])
    missing = [i for i, v in column.items() if _is_path(v) and not _source_path(v, ds.root).is_file()]
    if missing:
        raise ValueError(f"export: {len(missing)} image file(s) do not exist (first: {column[missing[0]]}); "
                         "drop them with an.review.drop(ids) and export again")
    root = tmp.resolve()
    taken: dict[Path, set] = {}
    files = []
    for sample_id, split, label, image in zip(out["id"], out["split"], out[label_col], column):
        folder = root / split_dirs[split] / label_dirs[label]
        if folder.parent.parent != root:      # names are single safe components; this never fires
            raise ValueError(f"export: folder name for label {label!r} escapes the export folder")
        if folder not in taken:
            folder.mkdir(parents=True, exist_ok=True)
            taken[folder] = set()
        if _is_path(image):
            source = _source_path(image, ds.root)
            name = _unique_file_name(safe_name(source.name), taken[folder])
            _link_or_copy(source, folder / name)
        elif image is None:
            raise ValueError(f"export: sample {sample_id!r} has no image; drop it with an.review.drop(ids)")
        else:
            name = _unique_file_name(safe_name(sample_id) + ".png", taken[folder])
            (folder / name).write_bytes(_png_bytes(image))
        files.append((folder / name).relative_to(root).as_posix())
    return files


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Index, pd.Series, np.ndarray)):
        return value.tolist()
    if isinstance(value, float) and value != value:
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _scalar(value):
    """A JSON-safe scalar: numpy scalars unwrapped, missing values (None, NaN, NA) as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else value


def _assign_splits(an, keep: pd.Index, kept_labels: pd.Series, splits, stratify, seed):
    """(split of every kept sample, split names in order, "re-split" | "given" | "none", leakage moves)."""
    ds = an.dataset
    groups = _group_ids(an.samples, keep)
    if splits is not None:
        names = list(splits)
        strata = (kept_labels.map(lambda v: f"{type(v).__name__}:{v}").to_numpy(dtype=str) if stratify
                  else np.zeros(len(keep), dtype=str))
        chosen = split_by_fraction(strata, groups, list(splits.values()), seed)
        return pd.Series(np.asarray(names, dtype=object)[chosen], index=keep), names, "re-split", []
    if ds.split is not None:
        given = ds.frame[ds.split].reindex(keep).astype(object).where(lambda s: s.notna(), UNASSIGNED)
        split, moved = _keep_groups_together(given, groups)
        return split, _split_order(split.unique()), "given", moved
    return pd.Series(NO_SPLIT, index=keep, dtype=object), [NO_SPLIT], "none", []


def _rows(ds, keep: pd.Index, kept_labels: pd.Series, split: pd.Series, label_col: str) -> pd.DataFrame:
    """id, split, current and given label, then the dataset's own columns, one row per kept sample."""
    out = ds.frame.drop(columns=[c for c in (ds.label, ds.split) if c]).reindex(keep)
    if ds.label is not None:
        out.insert(0, f"given_{label_col}", ds.frame[ds.label].reindex(keep).to_numpy())
        out.insert(0, label_col, kept_labels.to_numpy())
    out = out.rename(columns={"id": "id_column", "split": "split_column"})
    out.insert(0, "split", split.to_numpy())
    out.insert(0, "id", keep.to_numpy())
    return out.reset_index(drop=True)


def export_analysis(an, path, format: str = "parquet", drop=EXPORT_DROPS, splits: dict | None = None,
                    stratify: bool = True, seed: int = 0, overwrite: bool = False) -> Path:
    """Write the cleaned dataset to ``path`` (see the module docstring); return ``path``."""
    started = time.perf_counter()
    path, drop = _check_arguments(an, path, format, drop, splits)
    _existing_export_action(path, overwrite)
    ds, review = an.dataset, an.review
    if format == "imagefolder" and not ds.image:
        raise ValueError(f"export: format='imagefolder' needs images, this dataset has none "
                         f"(modality {ds.modality!r}); use format='parquet'")
    labelled = ds.label is not None
    label_col = ds.label or "label"
    ids = ds.frame.index

    # --- what stays
    reasons = _drop_reasons(an, drop, labelled)
    labels = review.labels().reindex(ids) if labelled else pd.Series(None, index=ids, dtype=object)
    if format == "imagefolder":
        reasons["unlabelled (imagefolder needs a label)"] = ids[labels.isna().to_numpy()]
    dropped = pd.Index([], dtype=ids.dtype).append(list(reasons.values())).unique()
    keep = ids[~ids.isin(dropped)]
    kept_labels = labels.reindex(keep)

    split, names, split_source, moved = _assign_splits(an, keep, kept_labels, splits, stratify, seed)
    split_dirs = folder_names(names)
    out = _rows(ds, keep, kept_labels, split, label_col)

    # --- write into a hidden sibling, then rename
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_partials(path)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        omitted, written, folders = {}, {}, []
        if format == "imagefolder":
            label_dirs = folder_names(kept_labels.unique())
            files = _write_images(an, out, tmp, split_dirs, label_dirs, label_col)
            index = out[["id", "split", label_col]].assign(file=files)
            index.to_csv(tmp / "index.csv", index=False)
            written = {name: f"{split_dirs[name]}/" for name in names}
            folders = [{"label": _scalar(label), "folder": folder} for label, folder in label_dirs.items()]
        else:
            table, omitted = _table_columns(out, format, ds.image)
            extension = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}[format]
            for name in names:
                part = table[table["split"] == name].drop(columns="split")
                _write_table(part.reset_index(drop=True), tmp / f"{split_dirs[name]}.{extension}", format)
                written[name] = f"{split_dirs[name]}.{extension}"
        manifest = _manifest(an, out, label_col, names, written, reasons, dropped, moved, split_source,
                             splits, stratify, seed, format, drop, omitted, labelled)
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        if folders:
            manifest["label_folders"] = folders
        (tmp / "manifest.json").write_text(_manifest_text(manifest), encoding="utf-8")
        _fsync(tmp / "manifest.json")
        _fsync(tmp)
        _move_into_place(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _remove_abandoned_partials(path: Path) -> None:
    """Delete the temporary folders of earlier exports to ``path`` whose process is gone (killed mid-export)."""
    for partial in path.parent.glob(f".{path.name}.partial-*-*"):
        pid = partial.name.rsplit("-", 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except PermissionError:     # alive, another user's
            pass


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    if _existing_export_action(path, overwrite) == "create":
        if path.exists():
            path.rmdir()           # an empty folder
        os.rename(tmp, path)
    else:
        old = path.parent / f".{path.name}.replaced-{uuid.uuid4().hex[:10]}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    _fsync(path.parent)


def _records(**columns) -> list[dict]:
    """Rows as JSON-ready dicts: plain Python scalars, missing values as None."""
    plain = {k: pd.Series(np.asarray(v, dtype=object)).where(lambda x: x.notna(), None).tolist()
             for k, v in columns.items()}
    return [dict(zip(plain, row)) for row in zip(*plain.values())]


def _manifest_text(manifest: dict) -> str:
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


def _manifest(an, out, label_col, names, written, reasons, dropped, moved, split_source, splits, stratify, seed,
              format, drop, omitted, labelled) -> dict:
    from dqwidgets import __version__

    review, ds = an.review, an.dataset
    per_split = {name: int((out["split"] == name).sum()) for name in names}
    per_label = {}
    if labelled:
        for name in names:
            counts = out.loc[out["split"] == name, label_col].value_counts(dropna=False)
            per_label[name] = {str(k): int(v) for k, v in counts.items()}
    changed = out[out["id"].isin(review.relabelled())] if labelled else out.iloc[:0]
    provenance = review.provenance()
    why = provenance.reindex(changed["id"])
    relabelled = _records(id=changed["id"], **{"from": changed[f"given_{label_col}"]}, to=changed[label_col],
                          action=why["label_action"], note=why["label_note"])
    why = provenance.reindex(reasons["dropped in review"])
    journal_dropped = _records(id=why.index, action=why["status_action"], note=why["status_note"])
    thresholds = getattr(an, "thresholds", {}) or {}
    return {
        "dqwidgets_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "format": format,
        "seed": seed,
        "stratify": bool(stratify),
        "splits_requested": splits,
        "split_source": split_source,
        "dataset": {"fingerprint": ds.fingerprint, "modality": ds.modality, "n_samples": len(ds.frame)},
        "journal": {"path": str(review.path), "last_action": review.seq},
        "counts": {"exported": len(out), "dropped": len(dropped), "per_split": per_split,
                   "per_split_label": per_label},
        "files": written,
        "dropped": {
            "flags": list(drop),
            "thresholds": {k: v for k, v in thresholds.items()},
            "by_reason": {reason: {"count": len(idx), "ids": idx} for reason, idx in reasons.items()},
            "journal": journal_dropped,
            "note": "marked-ok samples are exempt from flag drops; relabelled samples from is_label_issue",
        },
        "relabelled": {"count": len(relabelled), "samples": relabelled},   # among the exported samples
        "leakage_fixed": {"moved": len(moved), "samples": moved},
        "omitted_columns": omitted,
    }
