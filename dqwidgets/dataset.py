"""Dataset: a DataFrame of samples plus the roles of its columns (see docs/internals.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Embedded:
    """Features for the graph, and which samples could not be embedded (and why)."""

    features: np.ndarray
    valid: np.ndarray
    flags: pd.DataFrame
    properties: pd.DataFrame
    embedder: str
    seconds: float = 0.0


@dataclass
class Dataset:
    frame: pd.DataFrame
    label: str | None = None
    split: str | None = None
    image: str | None = None
    text: str | None = None
    features: np.ndarray | None = None
    pred_probs: np.ndarray | None = None
    logits: np.ndarray | None = None
    classes: list | None = None
    metadata_columns: list = field(default_factory=list)
    modality: str = "embedding"
    root: Path | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(cls, features, labels=None, metadata=None, split=None, ids=None,
                    pred_probs=None, logits=None, classes=None) -> "Dataset":
        """Precomputed embeddings: ``features`` N x D, ``labels`` N, ``metadata`` a DataFrame of N rows."""
        X = np.asarray(features)
        if X.ndim != 2:
            raise ValueError(f"Dataset.from_arrays: features must be 2-D (N x D), got shape {X.shape}")
        n = len(X)
        frame = pd.DataFrame(index=_make_ids(ids, n, "from_arrays"))
        label_col = None
        if labels is not None:
            labels = _as_1d(labels, n, "labels")
            frame["label"] = labels
            label_col = "label"
        split_col = None
        if split is not None:
            frame["split"] = _as_1d(split, n, "split")
            split_col = "split"
        meta_cols = []
        if metadata is not None:
            meta = pd.DataFrame(metadata)
            if len(meta) != n:
                raise ValueError(f"Dataset.from_arrays: metadata has {len(meta)} rows but features has {n}")
            clash = [c for c in meta.columns if c in frame.columns]
            if clash:
                raise ValueError(f"Dataset.from_arrays: metadata columns {clash} clash with reserved names; rename them")
            meta.index = frame.index
            frame = pd.concat([frame, meta], axis=1)
            meta_cols = [str(c) for c in meta.columns]
        return cls(frame=frame, label=label_col, split=split_col, features=X, pred_probs=pred_probs,
                   logits=logits, classes=classes, metadata_columns=meta_cols, modality="embedding")

    # ------------------------------------------------------------------ views
    @property
    def ids(self) -> pd.Index:
        return self.frame.index

    @property
    def labels(self) -> pd.Series | None:
        return self.frame[self.label] if self.label else None

    @property
    def splits(self) -> pd.Series | None:
        return self.frame[self.split] if self.split else None

    @property
    def metadata(self) -> pd.DataFrame:
        return self.frame[self.metadata_columns]

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha1(self.modality.encode())
        for i in sorted(map(str, self.ids)):
            h.update(i.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.frame)


def _make_ids(ids, n, where) -> pd.Index:
    if ids is None:
        return pd.RangeIndex(n, name="id")
    idx = pd.Index(ids, name="id")
    if len(idx) != n:
        raise ValueError(f"Dataset.{where}: {len(idx)} ids for {n} samples")
    if idx.has_duplicates:
        dup = idx[idx.duplicated()].unique()[:5].tolist()
        raise ValueError(f"Dataset.{where}: ids must be unique; repeated: {dup}")
    return idx


def _as_1d(values, n, name):
    arr = np.asarray(values, dtype=object) if not isinstance(values, (pd.Series, np.ndarray)) else values
    arr = arr.to_numpy() if isinstance(arr, pd.Series) else arr
    if arr.ndim != 1:
        raise ValueError(f"Dataset.from_arrays: {name} must be 1-D, got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"Dataset.from_arrays: {name} has {len(arr)} values but features has {n} rows")
    return arr
