"""The work of each Ray engine stage on one shard, as plain functions (no Ray here), and the shard store.

A stage writes ``part-<chunk>.parquet`` files under its folder, each atomically (a temporary name,
then a rename), and ``_DONE.json`` when every shard is there. A stage with ``_DONE.json`` is never run
again; a stage without it runs only the chunks whose shard is missing: a run killed mid-way goes on
from the shards already written. Scores reuse the pure array functions of ``dqwidgets.compute``.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dqwidgets.compute.knn import drop_self
from dqwidgets.compute.ood import knn_distance

DONE = "_DONE.json"


# ---------------------------------------------------------------------------------------------- store
class Stage:
    def __init__(self, root: Path, name: str):
        self.path = Path(root) / name
        self.name = name

    def shard(self, chunk: int) -> Path:
        return self.path / f"part-{int(chunk):05d}.parquet"

    def written(self) -> set[int]:
        if not self.path.exists():
            return set()
        return {int(p.name[5:10]) for p in self.path.glob("part-*.parquet")}

    def done(self) -> dict | None:
        p = self.path / DONE
        return json.loads(p.read_text()) if p.exists() else None

    def mark_done(self, info: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{DONE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.path / DONE)

    def file(self, name: str) -> Path:
        return self.path / name


def write_atomic(table, path: Path, metadata: dict | None = None) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        table = table.replace_schema_metadata({k: json.dumps(v) for k, v in metadata.items()})
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def shard_metadata(path: Path) -> dict:
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    return {k.decode(): json.loads(v) for k, v in md.items() if k != b"pandas"}


def matrix_column(M: np.ndarray):
    import pyarrow as pa

    M = np.ascontiguousarray(M)
    return pa.FixedSizeListArray.from_arrays(pa.array(M.ravel()), M.shape[1])


def read_matrix(table, column: str) -> np.ndarray:
    col = table.column(column).combine_chunks()
    width = col.type.list_size
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(col), width)


def read_columns(path: Path, columns: list):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns)


def normalise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------------- embed
@dataclass
class Chunk:
    chunk: int
    start: int
    stop: int
    file: int = -1  # Parquet features: which file and which of its row groups
    row_groups: tuple = ()


def embed_chunk(values, modality: str, embedder, device, root, dim: int | None):
    """(features, reasons, hashes, properties, property names, signatures) of one chunk's images or
    texts; signatures (the near-copy channel beside the embedding, ``dqwidgets.embed.signature``):
    images N x SIGNATURE_BYTES uint8 thumbnails, texts the normalised-text hashes."""
    from dqwidgets.embed.pipeline import embed_images, embed_texts
    from dqwidgets.embed.signature import text_signatures

    if modality == "image":
        from dqwidgets.engine.parquet import is_uri, read_bytes

        loaded = []
        pre = [""] * len(values)
        for i, v in enumerate(values):
            if isinstance(v, str) and is_uri(v):
                try:
                    v = read_bytes(v)
                except Exception as err:  # one unreadable file never stops the run
                    v, pre[i] = None, f"could not read the file ({type(err).__name__})"
            loaded.append(v)
        out = embed_images(loaded, root, embedder, device, None, progress=False, num_workers=0)
        reasons = [p or r for p, r in zip(pre, out.reasons)]
        unread = np.flatnonzero(np.array([bool(p) for p in pre], dtype=bool))
        out.features[unread] = 0.0
        sigs = out.signatures
        if sigs is not None:
            sigs[unread] = 0
        return out.features, reasons, out.hashes, out.properties, out.property_names, sigs
    texts = [t if isinstance(t, str) else None for t in values]
    out = embed_texts(texts, embedder, device, None, progress=False)
    return out.features, out.reasons, out.hashes, out.properties, out.property_names, text_signatures(texts)


def embed_table(rows: np.ndarray, X: np.ndarray, reasons=None, hashes=None, properties=None, names=(),
                signatures=None):
    """One embed shard: row, emb, reason, hash, ``prop:<name>`` columns and the near-copy signatures
    (``sig``: an image's uint8 thumbnail; ``tsig``: a text's normalised-text hash)."""
    import pyarrow as pa

    X = np.asarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(1)
    cols = {"row": pa.array(rows.astype(np.int64)), "emb": matrix_column(np.where(finite[:, None], X, 0.0))}
    r = list(reasons) if reasons is not None else [""] * len(rows)
    r = [x or ("" if ok else "features contain NaN or inf") for x, ok in zip(r, finite)]
    cols["reason"] = pa.array(r, pa.string())
    if hashes is not None:
        cols["hash"] = pa.array([h if isinstance(h, str) else None for h in hashes], pa.string())
    for j, name in enumerate(names):
        cols[f"prop:{name}"] = pa.array(np.asarray(properties[:, j], dtype=np.float32))
    if signatures is not None and np.asarray(signatures).dtype == object:
        cols["tsig"] = pa.array([h if isinstance(h, str) else None for h in signatures], pa.string())
    elif signatures is not None:
        cols["sig"] = matrix_column(np.asarray(signatures, dtype=np.uint8))
    return pa.table(cols)


MATRIX_COLUMNS = ("emb", "sig")  # fixed-size list columns of an embed shard (not read as side columns)


# ---------------------------------------------------------------------------------------------- fit sample
def sample_dir(stage_path: Path, share: float) -> Path:
    """Where the embed stage sets aside the rows of sample key < ``share`` (one folder per share, so a
    run asking for another fit sample size never mixes shards of two shares)."""
    return Path(stage_path) / f"sample-{share:.9f}"


def sample_source(stage_path: Path, shard: Path, share: float) -> Path:
    """The smallest file that holds every row of ``shard`` with sample key < ``share``: the set-aside
    shard of the smallest share >= ``share``, else the embed shard itself."""
    best = None
    for d in Path(stage_path).glob("sample-*"):
        try:
            s = float(d.name[len("sample-"):])
        except ValueError:
            continue
        if s >= share and (d / shard.name).exists() and (best is None or s < best[0]):
            best = (s, d / shard.name)
    return best[1] if best is not None else Path(shard)


def sample_key(rows: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) for each row number (splitmix64 of the row): the fit sample is the
    valid rows of the smallest keys. A row's key never depends on the shard layout or the seed, so the
    embed stage can set the sample rows aside while it writes the shards (no second scan to find them)."""
    z = np.asarray(rows, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def sample_share(fit_sample: int, n: int) -> float:
    """The share of the rows the embed stage sets aside for a fit sample of ``fit_sample`` valid rows
    (10% and 200 rows to spare for invalid rows and chance); 1.0 = every row (then the embed shards
    themselves are the sample and nothing is set aside)."""
    return float(min(1.0, round((1.1 * fit_sample + 200) / max(n, 1), 9)))  # 9 digits: its folder's name


def sample_table(table, share: float):
    """The rows of an embed shard's table whose key is below ``share`` (row, embedding)."""
    import pyarrow as pa

    key = sample_key(table.column("row").to_numpy())
    keep = np.flatnonzero(key < share)
    return table.select(["row", "emb"]).take(pa.array(keep))


def smallest(keys: np.ndarray, m: int) -> np.ndarray:
    """A mask of the ``m`` smallest keys (all of them when there are fewer)."""
    keep = np.ones(len(keys), dtype=bool)
    if m < len(keys):
        keep = keys <= np.partition(keys, m - 1)[m - 1]
    return keep


# ---------------------------------------------------------------------------------------------- kNN
def knn_exact(Q: np.ndarray, q_rows: np.ndarray, R_t, k: int):
    """Exact cosine top-k of normalised queries ``Q`` (valid positions ``q_rows``) among the torch
    reference ``R_t`` (all valid rows, normalised), self left out."""
    import torch

    from dqwidgets.compute.knn import _search

    idx, dist = _search(torch.as_tensor(Q), R_t, k + 1, "cosine", None)
    return without_self(idx.numpy(), dist.numpy(), q_rows)


def without_self(idx, dist, q_rows):
    # drop_self compares with 0..n-1: shift every row so that its own position reads as its row number
    shift = q_rows[:, None] - np.arange(len(q_rows))[:, None]
    i, d = drop_self(idx - shift, dist)
    return (i + shift).astype(np.int64), np.clip(d, 0.0, 2.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------- scores
@dataclass
class Model:
    """What the score pass broadcasts: fitted on a sample by the driver, O(D x C + sample) in size."""

    n_classes: int
    folds: int
    probe: list | None  # per fold (mean, std, W, b) as numpy
    gaussians: object | None  # compute.ood.ClassGaussians
    pca_mean: np.ndarray
    pca_axes: np.ndarray  # D x 2
    anchors: np.ndarray | None  # S x D normalised rows the layout was fitted on
    anchor_rows: np.ndarray | None  # their valid positions
    anchor_xy: np.ndarray | None  # S x 2
    k: int
    probe_l2: float | None = None  # the probe's L2 penalty (compute.probe.choose_l2, as the local engine)
    region_probe: list | None = None  # per fold at the weakest penalty: the foreign-region search's probe


def fold_of(ids) -> np.ndarray:
    """Fold hash of each sample id (stable across runs, machines and shard layouts)."""
    import pandas as pd

    return pd.util.hash_pandas_object(pd.Index(ids).astype(str), index=False).to_numpy(np.uint64)


def probe_logits(model: Model, X: np.ndarray, fold: np.ndarray, probe: list | None = None) -> np.ndarray:
    logits = np.empty((len(X), model.n_classes), dtype=np.float32)
    for f, (mean, std, W, b) in enumerate(model.probe if probe is None else probe):
        m = fold == f
        if m.any():
            logits[m] = ((X[m] - mean) / std) @ W + b
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def place_on_anchors(model: Model, Xn: np.ndarray, rows: np.ndarray, m: int = 10, block: int = 4096) -> np.ndarray:
    """2-D positions: an anchor keeps its fitted place; any other row goes to the similarity-weighted
    mean of its ``m`` most similar anchors (the initialisation of UMAP's own ``transform``). In blocks
    of rows: a 50k-row shard x 20k anchors would be a 4 GB similarity matrix at once."""
    m = min(m, len(model.anchors))
    xy = np.empty((len(Xn), 2), dtype=np.float64)
    for b in range(0, len(Xn), block):
        sim = Xn[b:b + block] @ model.anchors.T
        top = np.argpartition(-sim, m - 1, axis=1)[:, :m]
        s = np.take_along_axis(sim, top, 1)
        w = np.exp((s - s.max(1, keepdims=True)) * 20.0)
        xy[b:b + block] = (w[:, :, None] * model.anchor_xy[top]).sum(1) / w.sum(1, keepdims=True)
    where = np.searchsorted(model.anchor_rows, rows)
    where = np.minimum(where, len(model.anchor_rows) - 1)
    own = model.anchor_rows[where] == rows
    xy[own] = model.anchor_xy[where[own]]
    return xy.astype(np.float32)


def score_shard(model: Model, X: np.ndarray, vrows: np.ndarray, fold: np.ndarray, nbr: np.ndarray,
                dist: np.ndarray) -> dict:
    """Per-row columns of the score pass over one shard's valid rows: the out-of-fold probe's
    probabilities, the kNN and Mahalanobis OOD distances, the PCA projection and the layout placement."""
    out: dict[str, np.ndarray] = {"vrow": vrows}
    if model.probe is not None:
        out["probs"] = softmax(probe_logits(model, X, fold))
    if model.region_probe is not None:
        out["region_probs"] = softmax(probe_logits(model, X, fold, model.region_probe))
    out["raw_knn"] = knn_distance(dist)
    if model.gaussians is not None:
        out["raw_mahalanobis"] = model.gaussians.distance(X)
    out["pca"] = ((X - model.pca_mean) @ model.pca_axes).astype(np.float32)
    if model.anchors is not None:
        out["umap"] = place_on_anchors(model, normalise(X), vrows)
    return out
