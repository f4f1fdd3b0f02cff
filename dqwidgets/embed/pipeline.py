"""Embed a column of images or texts: hash, look up the cache, batch the rest through the model.

Images are decoded, measured (``properties.py``) and resized in DataLoader worker processes and
cross to the model as uint8 tensors; texts are embedded in batches of similar length. Each sample
ends with a feature row, a properties row and a reason ("" when fine). Samples whose content hash
is in the cache are not decoded at all.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dqwidgets.embed.cache import EmbeddingCache
from dqwidgets.embed.image_source import UnreadableImage, hash_source, open_image
from dqwidgets.embed.properties import (IMAGE_PROPERTIES, PROPERTIES_VERSION, PROPERTY_SIDE, TEXT_PROPERTIES,
                                        image_properties, text_properties)
from dqwidgets.embed.protocol import cache_key
from dqwidgets.embed.signature import SIGNATURE_BYTES, SIGNATURE_KEY, image_signature


LOADER_BATCH = 32       # images per worker batch at 224 px: what crosses shared memory at once
BATCH_PIXELS_CPU = 32 * 224 * 224     # model batch on a CPU: 32 images at 224 px, more when smaller
BATCH_PIXELS_CUDA = 256 * 224 * 224


def batch_sizes(device: torch.device, side: int, batch_size: int | None = None) -> tuple[int, int]:
    """``(model batch, worker batch)`` for square inputs of ``side`` px: the same pixels per batch at
    any side (small images: more of them per call, less per-call overhead), at most 1024 images."""
    pixels = BATCH_PIXELS_CUDA if device.type == "cuda" else BATCH_PIXELS_CPU
    model_batch = batch_size or int(max(1, min(1024, pixels // max(1, side * side))))
    loader_batch = int(max(1, min(model_batch, LOADER_BATCH * 224 * 224 // max(1, side * side))))
    return model_batch, loader_batch


@dataclass
class MediaEmbedding:
    features: np.ndarray        # N x D float32, zeros where reasons[i] != ""
    properties: np.ndarray      # N x P float32, NaN where unknown
    property_names: list
    reasons: list               # "" = embedded
    seconds: float              # time spent in the model and decoding (0 when all came from the cache)
    n_from_cache: int
    hashes: list                # content hash per sample (None = no readable data)
    signatures: np.ndarray | None = None  # images: N x SIGNATURE_BYTES uint8 (embed.signature), zeros where unread


def hash_images(values, root: Path | None) -> tuple[list, list]:
    """Content hash of every image (threads: hashing reads files and releases the GIL)."""
    def one(v):
        try:
            return hash_source(v, root), ""
        except UnreadableImage as e:
            return None, str(e)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        out = list(pool.map(one, values, chunksize=64))
    return [h for h, _ in out], [r for _, r in out]


class DecodedImages(torch.utils.data.Dataset):
    """Worker-side: decode one image safely, measure its properties, resize it for the model."""

    def __init__(self, values, positions, root, transform):
        self.values, self.positions, self.root, self.transform = values, positions, root, transform

    def __len__(self):
        return len(self.positions)

    def __getitem__(self, i):
        pos = int(self.positions[i])
        side = max(self.transform.size, PROPERTY_SIDE) if self.transform is not None else PROPERTY_SIDE
        try:
            img, size = open_image(self.values[pos], self.root, draft_size=side)
            x = self.transform(img) if self.transform is not None else torch.zeros(0, dtype=torch.uint8)
            return pos, x, (image_properties(img, size), image_signature(img)), ""
        except UnreadableImage as e:
            return pos, None, None, str(e)
        except Exception as e:  # a failure in one sample never stops the run
            return pos, None, None, f"could not prepare image ({type(e).__name__}: {e})"


def _collate(items):
    ok = [it for it in items if it[1] is not None]
    batch = torch.stack([it[1] for it in ok]) if ok else None
    props = np.stack([it[2][0] for it in ok]) if ok else None
    sigs = np.stack([it[2][1] for it in ok]) if ok else None
    return [it[0] for it in ok], batch, (props, sigs), [(it[0], it[3]) for it in items if it[1] is None]


def default_workers(device: torch.device, n: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n < 64 or cpus < 2:
        return 0
    return min(8, cpus) if device.type == "cuda" else max(1, min(4, cpus - 1))


def fit_shared_memory(workers: int, prefetch: int, batch_bytes: int) -> tuple[int, int]:
    """Worker batches travel through /dev/shm, which containers often cap at 64 MB: lower the number of
    batches in flight (and at last the workers) so they fit in half of what is free."""
    try:
        st = os.statvfs("/dev/shm")
        free = st.f_bavail * st.f_frsize
    except OSError:
        return workers, prefetch
    while workers and workers * prefetch * batch_bytes > free // 2:
        if prefetch > 1:
            prefetch -= 1
        else:
            workers -= 1
    return workers, prefetch


def _model_batches(loader, embedder, device, model_batch, reasons, bar):
    """Gather the loader's small worker batches into model batches of ``model_batch`` images; yield
    ``(positions, features, properties)``; record the reason of every sample that failed to decode."""
    pending, n_pending = [], 0

    def run():
        positions = [p for ps, _, _ in pending for p in ps]
        batch = pending[0][1] if len(pending) == 1 else torch.cat([b for _, b, _ in pending])
        if device.type == "cuda" and not batch.is_pinned():
            batch = batch.pin_memory()
        props = np.concatenate([pr[0] for _, _, pr in pending]), np.concatenate([pr[1] for _, _, pr in pending])
        pending.clear()
        return positions, embedder.embed_batch(batch, device).cpu().numpy().astype(np.float32, copy=False), props

    for positions, batch, props, failed in loader:
        for pos, why in failed:
            reasons[pos] = why
        if batch is not None:
            pending.append((positions, batch, props))
            n_pending += len(positions)
        bar.update(len(positions) + len(failed))
        if n_pending >= model_batch:
            yield run()
            n_pending = 0
    if pending:
        yield run()


def embed_images(values, root, embedder, device, cache_dir, progress=True, batch_size=None,
                 num_workers=None) -> MediaEmbedding:
    n = len(values)
    hashes, reasons = hash_images(values, root)
    if hasattr(embedder, "fit_input_size"):       # before the cache key, which holds the input size
        embedder.fit_input_size(values, root)
    names = IMAGE_PROPERTIES
    key = cache_key(embedder)
    cache = EmbeddingCache(cache_dir, f"{key}-p{PROPERTIES_VERSION}", names) if cache_dir and key else None
    found, cached_feats, cached_props = cache.lookup(hashes) if cache else (np.zeros(n, bool), None, None)
    todo = np.array([i for i in range(n) if hashes[i] is not None and not found[i]], dtype=np.int64)
    # signatures do not depend on the embedder: their own cache, so a cached embedding without one (an
    # older cache) is only decoded again for its signature, never silently left without
    sig_cache = EmbeddingCache(cache_dir, SIGNATURE_KEY, []) if cache_dir else None
    signatures = np.zeros((n, SIGNATURE_BYTES), dtype=np.uint8)
    sig_found = np.zeros(n, bool)
    if sig_cache is not None:
        sig_found, cached_sigs, _ = sig_cache.lookup(hashes)
        if cached_sigs is not None and cached_sigs.shape[1] == SIGNATURE_BYTES:
            signatures[sig_found] = np.clip(np.rint(cached_sigs[sig_found]), 0, 255).astype(np.uint8)
        else:
            sig_found[:] = False
    sig_only = np.array([i for i in range(n) if found[i] and not sig_found[i]], dtype=np.int64)
    new_sigs = []

    features = cached_feats if cached_feats is not None else None
    properties = cached_props if cached_props is not None else np.full((n, len(names)), np.nan, np.float32)
    seconds = 0.0
    new_rows = []
    if len(todo):
        start = time.perf_counter()
        model_batch, loader_batch = batch_sizes(device, embedder.transform.size, batch_size)
        workers = default_workers(device, len(todo)) if num_workers is None else num_workers
        wanted = workers
        workers, prefetch = fit_shared_memory(workers, 4, loader_batch * 3 * embedder.transform.size ** 2)
        if wanted and not workers:
            warnings.warn("too little free space in /dev/shm for DataLoader workers: images are decoded in the "
                          "main process (slower). In Docker, run with e.g. --shm-size=2g", RuntimeWarning, stacklevel=3)
        loader = DataLoader(DecodedImages(values, todo, root, embedder.transform), batch_size=loader_batch,
                            num_workers=workers, collate_fn=_collate, pin_memory=device.type == "cuda",
                            prefetch_factor=prefetch if workers else None, persistent_workers=False)
        with tqdm(total=len(todo), desc=f"embedding images ({embedder.name}) at {embedder.transform.size} px", unit="img",
                  disable=not progress) as bar:
            for positions, out, (props, sigs) in _model_batches(loader, embedder, device, model_batch, reasons, bar):
                if features is None:
                    features = np.zeros((n, out.shape[1]), dtype=np.float32)
                features[positions] = out
                properties[positions] = props
                signatures[positions] = sigs
                new_rows.extend(positions)
        seconds = time.perf_counter() - start
    if len(sig_only):  # decoded for the signature only (no model)
        loader = DataLoader(DecodedImages(values, sig_only, root, None), batch_size=LOADER_BATCH,
                            num_workers=default_workers(device, len(sig_only)) if num_workers is None else num_workers,
                            collate_fn=_collate)
        for positions, _, (props, sigs), failed in loader:
            if positions:
                signatures[positions] = sigs
                new_sigs.extend(positions)
    if features is None:
        features = np.zeros((n, embedder.dimension or 0), dtype=np.float32)
    if cache and new_rows:
        rows = np.array(new_rows)
        cache.store([hashes[i] for i in rows], features[rows], properties[rows])
    new_sigs = np.array(sorted(set(new_sigs) | set(new_rows)), dtype=np.int64)
    if sig_cache is not None and len(new_sigs):
        sig_cache.store([hashes[i] for i in new_sigs], signatures[new_sigs].astype(np.float32),
                        np.zeros((len(new_sigs), 0), np.float32))
    _zero_failed(features, properties, reasons)
    signatures[np.array([bool(r) for r in reasons], dtype=bool)] = 0
    return MediaEmbedding(features, properties, list(names), reasons, seconds, int(found.sum()), hashes, signatures)


CPU_TEXTS_PER_CALL = 256
"""Texts per ``embed_batch`` call on a CPU: the embedder cuts them into runs of ~1,024 padded tokens and
runs those side by side on torch's threads, so a call needs several runs (MiniLM on Rotten Tomatoes
snippets: ~8) to keep both threads busy; the progress bar moves once per call (about a second)."""


def embed_texts(texts, embedder, device, cache_dir, progress=True, batch_size=None) -> MediaEmbedding:
    """``texts``: a list of str or None (None / blank = empty sample)."""
    import hashlib
    n = len(texts)
    reasons = ["" if isinstance(t, str) and t.strip() else "empty text" for t in texts]
    hashes = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() if not r else None
              for t, r in zip(texts, reasons)]
    properties = np.full((n, len(TEXT_PROPERTIES)), np.nan, dtype=np.float32)
    for i, t in enumerate(texts):
        if isinstance(t, str):
            properties[i] = text_properties(t)
    key = cache_key(embedder)
    cache = EmbeddingCache(cache_dir, f"{key}-p{PROPERTIES_VERSION}", []) if cache_dir and key else None
    found, features, _ = cache.lookup(hashes) if cache else (np.zeros(n, bool), None, None)
    todo = [i for i in range(n) if hashes[i] is not None and not found[i]]
    todo.sort(key=lambda i: len(texts[i]))          # similar lengths batch with little padding
    seconds = 0.0
    if todo:
        start = time.perf_counter()
        batch_size = batch_size or (512 if device.type == "cuda" else CPU_TEXTS_PER_CALL)
        with tqdm(total=len(todo), desc=f"embedding texts ({embedder.name})", unit="text",
                  disable=not progress) as bar:
            for b in range(0, len(todo), batch_size):
                rows = todo[b:b + batch_size]
                out = embedder.embed_batch([texts[i] for i in rows], device).cpu().numpy().astype(np.float32)
                if features is None:
                    features = np.zeros((n, out.shape[1]), dtype=np.float32)
                features[rows] = out
                bar.update(len(rows))
        seconds = time.perf_counter() - start
        if cache:
            cache.store([hashes[i] for i in todo], features[todo], np.zeros((len(todo), 0), np.float32))
    if features is None:
        features = np.zeros((n, embedder.dimension or 0), dtype=np.float32)
    _zero_failed(features, properties, reasons, keep_properties=True)
    return MediaEmbedding(features, properties, list(TEXT_PROPERTIES), reasons, seconds, int(found.sum()),
                          hashes)


def _zero_failed(features, properties, reasons, keep_properties=False):
    bad = np.array([bool(r) for r in reasons], dtype=bool)
    if bad.any():
        features[bad] = 0.0
        if not keep_properties:
            properties[bad] = np.nan
