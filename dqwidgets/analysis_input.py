"""What analyze() checks and prepares before any score: features, validity, labels, classes,
splits, the user's probabilities and the attribute columns for the slice and shortcut search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dqwidgets.compute.spurious import encode_attribute
from dqwidgets.missing import is_missing

VALIDITY_COLUMNS = ("is_invalid", "invalid_reason", "is_unreadable", "is_empty", "is_unlabeled")


@dataclass
class AnalysisInput:
    ids: pd.Index
    features: np.ndarray  # float32 N x D, invalid rows zeros
    valid: np.ndarray  # bool N
    flags: pd.DataFrame  # VALIDITY_COLUMNS, index = ids
    labels: np.ndarray | None  # object N, as given
    label_codes: np.ndarray  # int64 N, -1 = unlabelled
    classes: list
    splits: np.ndarray | None
    split_codes: np.ndarray | None
    split_names: list | None
    pred_probs: np.ndarray | None  # N x C
    logits: np.ndarray | None
    content_hashes: np.ndarray | None
    attributes: dict  # name -> (codes int64 N, names)
    extra: pd.DataFrame  # metadata + properties columns for samples
    embedder: str
    signatures: np.ndarray | None = None  # images: N x SIGNATURE_BYTES uint8 thumbnails (embed.signature)
    text_signatures: np.ndarray | None = None  # texts: object N, sha1 of the normalised text, or None
    text_surface: np.ndarray | None = None  # texts: N x 10 surface counts (compute.text_view), or None

    @property
    def n(self) -> int:
        return len(self.ids)


def check_dataset(ds) -> int:
    """The checks every engine makes first: a dq.Dataset with samples and unique ids; returns N."""
    if not hasattr(ds, "frame") or not hasattr(ds, "features"):
        raise ValueError(f"analyze: expected a dq.Dataset (e.g. dq.Dataset.from_arrays(X, y)), got {type(ds).__name__}")
    n = len(ds.frame)
    if n == 0:
        raise ValueError("analyze: the dataset has no samples")
    if ds.frame.index.has_duplicates:
        dup = ds.frame.index[ds.frame.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"analyze: sample ids must be unique; repeated: {dup}. Pass ids= or reset the index")
    return n


def prepare_input(ds, embedder, pred_probs, logits, device, k, workdir: Path, progress, reference) -> AnalysisInput:
    n = check_dataset(ds)
    properties = pd.DataFrame(index=ds.frame.index)
    signatures = None
    if ds.features is not None:
        X = _numeric_features(ds.features, n)
        flags = _empty_flags(ds.frame.index)
        name = "precomputed"
        if X.ndim == 2 and X.shape[1] <= 3:
            import warnings

            warnings.warn(f"analyze: the features have {X.shape[1]} column(s): they are read as embeddings, on a "
                          "cosine graph that sees only their direction (rows that differ only in size are one point). "
                          "For a table of values, pass it with Dataset.from_dataframe (standardised, size kept)",
                          stacklevel=3)
    else:
        emb = ds.embed(embedder=embedder, device=device, cache_dir=workdir / "cache", progress=progress)
        if n and not np.asarray(emb.valid, dtype=bool).any():
            why = pd.Series(emb.flags["invalid_reason"] if "invalid_reason" in emb.flags.columns else [""] * n)
            why = why.astype(str).replace("", "unreadable").value_counts()
            raise ValueError(f"analyze: none of the {n} samples could be embedded ("
                             + "; ".join(f"{c} rows: {r}" for r, c in why.items())
                             + f"); check the {ds.modality} column's values")
        X = _numeric_features(emb.features, n)
        flags = _empty_flags(ds.frame.index)
        for c in VALIDITY_COLUMNS:
            if c in emb.flags.columns:
                flags[c] = emb.flags[c].to_numpy()
        flags.loc[~np.asarray(emb.valid, dtype=bool), "is_invalid"] = True
        properties = emb.properties if emb.properties is not None else properties
        name = emb.embedder
        signatures = getattr(emb, "signatures", None)
    ref_dim = None if reference is None or getattr(reference, "features", None) is None else reference.features.shape[1]
    if ref_dim is not None and X.shape[1] != ref_dim:
        raise ValueError(f"analyze: the features have {X.shape[1]} columns but the reference analysis' have {ref_dim}; "
                         "a reference compares like with like: embed both with the same embedder (or pass the same "
                         "feature columns)")
    finite = np.isfinite(X).all(1)
    # a value this large overflows float32 arithmetic (its square is beyond 3.4e38): the row is unusable as is
    huge = finite & (np.abs(X).max(1, initial=0.0) >= MAX_ABS_FEATURE)  # a NaN row's max is NaN: not huge
    for bad, reason in ((~finite, "features contain NaN or inf"),
                        (huge, f"features reach {MAX_ABS_FEATURE:.0e} or more (float32 overflows): rescale them")):
        if bad.any():
            bad = bad & ~flags["is_invalid"].to_numpy()
            flags.loc[bad, "is_invalid"] = True
            flags.loc[bad & (flags["invalid_reason"] == "").to_numpy(), "invalid_reason"] = reason
    if (~finite | huge).any():
        X = np.where((finite & ~huge)[:, None], X, 0.0).astype(np.float32)
    valid = ~flags["is_invalid"].to_numpy(dtype=bool)
    n_valid = int(valid.sum())
    if n_valid <= k:
        why = flags.loc[~valid, "invalid_reason"].replace("", "unreadable").value_counts()
        left_out = "; ".join(f"{c} rows: {r}" for r, c in why.items())
        if n_valid < 2:
            raise ValueError(f"analyze: {n_valid} valid samples of {n}" + (f" ({left_out})" if left_out else "")
                             + "; the analysis needs at least 2" + (": fix those rows or their source" if left_out
                                                                    else ": add samples"))
        raise ValueError(f"analyze: {n_valid} valid samples" + (f" of {n} ({left_out})" if left_out else "")
                         + f" but k={k} neighbours per sample; pass k={n_valid - 1} or fewer, or add samples")

    labels, codes, classes = _labels(ds, reference)
    flags["is_unlabeled"] = flags["is_unlabeled"].to_numpy() | (codes < 0)
    probs, lg = _user_probabilities(ds, pred_probs, logits, n, classes)
    splits = ds.splits.to_numpy(dtype=object) if getattr(ds, "split", None) else None
    split_codes = split_names = None
    if splits is not None:
        split_codes, split_names = _codes(splits)
    hashes = ds.content_hashes() if hasattr(ds, "content_hashes") else None
    extra = pd.concat([ds.metadata.reset_index(drop=True),
                       properties.reset_index(drop=True).drop(columns=[c for c in properties.columns
                                                                        if c in ds.metadata.columns])], axis=1)
    attributes = {str(c): _encode_attribute(extra[c].to_numpy()) for c in extra.columns}
    return AnalysisInput(ds.frame.index, X, valid, flags, labels, codes, classes, splits, split_codes,
                         split_names, probs, lg, None if hashes is None else np.asarray(hashes, dtype=object),
                         attributes, extra, name, signatures, _text_signatures(ds), text_surface(ds))


def features_are_cells(ds) -> bool:
    """Whether the features the graph is built on are the data's own values, one per cell (a table's
    encoded columns, or arrays the user passed: a table's columns or an embedding of their own), so
    that the duplicate step compares pairs cell by cell too; not the output of our image/text models."""
    return getattr(ds, "modality", None) in ("tabular", "embedding")


def _texts(ds) -> list | None:
    """A text dataset's texts (None where a cell holds no string), else None."""
    if getattr(ds, "modality", None) != "text" or not getattr(ds, "text", None) or ds.text not in ds.frame.columns:
        return None
    return [t if isinstance(t, str) else None for t in ds.frame[ds.text].tolist()]


def _text_signatures(ds):
    """Normalised-text hashes of a text dataset (case, whitespace, punctuation folded), else None."""
    texts = _texts(ds)
    if texts is None:
        return None
    from dqwidgets.embed.signature import text_signatures

    return text_signatures(texts)


def text_surface(ds):
    """A text dataset's surface counts (``compute.text_view.surface_counts``, N x 10), what the second
    view of the foreign-cluster search is built from; None for other modalities."""
    texts = _texts(ds)
    if texts is None:
        return None
    from dqwidgets.compute.text_view import surface_counts

    return surface_counts(texts)


MAX_ABS_FEATURE = 1e18  # |x| at or above this makes a feature row invalid (float32 squares overflow near 1.8e19)


def _empty_flags(index) -> pd.DataFrame:
    n = len(index)
    f = pd.DataFrame(index=index)
    for c in VALIDITY_COLUMNS:
        f[c] = np.full(n, "", dtype=object) if c == "invalid_reason" else np.zeros(n, dtype=bool)
    return f


def _numeric_features(features, n) -> np.ndarray:
    X = np.asarray(features)
    if X.ndim != 2:
        raise ValueError(f"analyze: features must be N x D, got shape {X.shape}")
    if len(X) != n:
        raise ValueError(f"analyze: {len(X)} feature rows but the dataset has {n} samples")
    if X.shape[1] == 0:
        raise ValueError("analyze: features have no columns")
    if X.dtype.kind not in "fiub":
        try:
            X = X.astype(np.float32)
        except (TypeError, ValueError):
            flat = X.ravel()
            first = next((v for v in flat if not _is_number(v)), flat[0])
            raise ValueError(f"analyze: features must be numeric; found {first!r} ({type(first).__name__}). "
                             "Encode or drop non-numeric columns before building the Dataset") from None
    return np.ascontiguousarray(X, dtype=np.float32)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _labels(ds, reference):
    n = len(ds.frame)
    if not getattr(ds, "label", None):
        classes = list(reference.classes) if reference is not None else list(ds.classes or [])
        return None, np.full(n, -1, dtype=np.int64), classes
    labels = ds.labels.to_numpy(dtype=object)
    for i, v in enumerate(labels):
        try:
            hash(v)
        except TypeError:
            raise ValueError(f"analyze: labels must be hashable (str, int, ...); sample {ds.frame.index[i]!r} has "
                             f"a {type(v).__name__}: {v!r}. Convert labels to strings or ints") from None
    missing = np.array([is_missing(v) for v in labels], dtype=bool)
    present = labels[~missing]
    if reference is not None:
        classes = list(reference.classes)
    elif ds.classes is not None:
        classes = list(ds.classes)
    else:
        uniq = pd.unique(present)
        try:
            classes = sorted(uniq)
        except TypeError:
            classes = sorted(uniq, key=lambda v: (type(v).__name__, str(v)))
    lookup = {c: i for i, c in enumerate(classes)}
    codes = np.full(n, -1, dtype=np.int64)
    unknown = []
    for i in np.flatnonzero(~missing):
        c = lookup.get(labels[i])
        if c is None:
            unknown.append(labels[i])
        else:
            codes[i] = c
    if unknown and reference is not None and not classes:
        raise ValueError("analyze: the reference analysis has no labels, so a labelled batch cannot be scored against "
                         "its classes; analyse the reference with its labels, or pass this batch without labels")
    if unknown:
        where = "the reference analysis' classes" if reference is not None else "Dataset.classes"
        raise ValueError(f"analyze: labels {sorted(set(map(str, unknown)))[:5]} are not in {where} {classes[:10]}; "
                         "add them to the classes or fix the labels")
    used = np.unique(codes[codes >= 0])
    if reference is None and len(present) and len(used) < 2:
        raise ValueError(f"analyze: every labelled sample has the label {classes[used[0]]!r}; label issues need at "
                         "least two classes. Add samples of other classes, or analyse without labels")
    per_class = np.bincount(codes[codes >= 0], minlength=len(classes))
    if reference is None and len(used) and (per_class >= 2).sum() < 2:
        raise ValueError(f"analyze: only {int(per_class.sum())} labelled samples ({', '.join(f'{classes[c]!r}: {per_class[c]}' for c in used[:5])}); "
                         "the out-of-fold probe behind the label scores needs at least two classes with two labelled "
                         "samples each. Label more samples, or analyse without labels")
    return labels, codes, classes


def _user_probabilities(ds, pred_probs, logits, n, classes):
    probs = pred_probs if pred_probs is not None else getattr(ds, "pred_probs", None)
    lg = logits if logits is not None else getattr(ds, "logits", None)
    c = len(classes)
    if lg is not None:
        lg = np.asarray(lg, dtype=np.float32)
        if lg.shape != (n, c):
            raise ValueError(f"analyze: logits must be N x C = {n} x {c} (columns in classes order {classes[:10]}), "
                             f"got {lg.shape}")
        if not np.isfinite(lg).all():
            raise ValueError("analyze: logits contain NaN or inf; fix them or leave them out")
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape != (n, c):
            raise ValueError(f"analyze: pred_probs must be N x C = {n} x {c} (columns in classes order "
                             f"{classes[:10]}), got {probs.shape}")
        if not np.isfinite(probs).all() or (probs < 0).any() or np.abs(probs.sum(1) - 1).max() > 1e-3:
            raise ValueError("analyze: pred_probs rows must be finite, non-negative and sum to 1; "
                             "pass logits= instead if these are raw model outputs")
    elif lg is not None:
        e = np.exp(lg - lg.max(1, keepdims=True))
        probs = (e / e.sum(1, keepdims=True)).astype(np.float32)
    return probs, lg


def _codes(values: np.ndarray):
    missing = np.array([is_missing(v) for v in values], dtype=bool)
    codes = np.full(len(values), -1, dtype=np.int64)
    names: list = []
    if (~missing).any():
        uniq, inv = np.unique(values[~missing].astype(str), return_inverse=True)
        codes[~missing] = inv
        names = list(uniq)
    return codes, names


def _encode_attribute(values: np.ndarray):
    """Codes and names of one metadata/property column, by the shortcut search's own encoder
    (numbers are binned there)."""
    codes, names = encode_attribute(np.asarray(values))
    return np.asarray(codes, dtype=np.int64), list(names)
