"""Planted-truth corruptions of Fashion-MNIST, for the tests and the quality benchmark.

``planted_fashion_mnist`` takes a clean class-stratified sample and plants, with the truth kept:
label noise (random flips and confusable pairs such as shirt/T-shirt), samples of two held-out
classes as foreign samples, a tight cluster of foreign samples, near-copies, and a corner patch tied
to one class with a metadata column that says so. Features are the pixels projected on their top
principal components (no model download needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dqwidgets.examples import load_fashion_mnist

CONFUSABLE = [(0, 6), (2, 4), (7, 9)]  # T-shirt/Shirt, Pullover/Coat, Sneaker/Ankle boot
HELD_OUT = (5, 8)  # Sandal, Bag: never among the given classes
PATCH_CLASS = 1  # Trouser


@dataclass
class Planted:
    images: np.ndarray  # uint8 N x 28 x 28
    features: np.ndarray  # float32 N x dims
    labels: np.ndarray  # object (class names), as given (noisy)
    true_labels: np.ndarray  # object
    metadata: pd.DataFrame  # corner_patch (bool), stripe (bool, unrelated to the label)
    is_noisy: np.ndarray  # bool: label flipped
    is_foreign: np.ndarray  # bool: held-out class sample
    is_cluster: np.ndarray  # bool: member of the planted tight foreign cluster
    copy_of: np.ndarray  # int64: position of the original for near-copies, -1 otherwise
    classes: list

    @property
    def is_ood(self) -> np.ndarray:
        return self.is_foreign | self.is_cluster


def pixel_pca(images: np.ndarray, dims: int = 64, seed: int = 0) -> np.ndarray:
    import torch

    X = torch.as_tensor(images.reshape(len(images), -1), dtype=torch.float32) / 255.0
    X = X - X.mean(0)
    torch.manual_seed(seed)
    _, _, V = torch.pca_lowrank(X, q=dims, center=False, niter=4)
    return (X @ V).numpy().astype(np.float32)


def planted_fashion_mnist(n: int = 5000, noise_rate: float = 0.1, foreign_rate: float = 0.02,
                          cluster_size: int = 40, copy_rate: float = 0.02, dims: int = 64,
                          seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    images, labels, names = load_fashion_mnist("train", None)
    kept_classes = [c for c in range(10) if c not in HELD_OUT]
    kept = np.flatnonzero(np.isin(labels, kept_classes))
    held = np.flatnonzero(~np.isin(labels, kept_classes))
    n_foreign = int(round(foreign_rate * n))
    n_copies = int(round(copy_rate * n))
    n_clean = n - n_foreign - cluster_size - n_copies
    base = rng.choice(kept, n_clean, replace=False)
    imgs = images[base].copy()
    true = labels[base].copy()

    # corner patch on 90% of one class and 3% of the others; a metadata column records it
    patch = np.where(true == PATCH_CLASS, rng.random(n_clean) < 0.9, rng.random(n_clean) < 0.03)
    imgs[patch, :5, :5] = 255

    # label noise: half confusable-pair swaps, half random flips
    given = true.copy()
    n_noisy = int(round(noise_rate * n_clean))
    pair_of = {a: b for a, b in CONFUSABLE} | {b: a for a, b in CONFUSABLE}
    in_pairs = np.flatnonzero(np.isin(true, list(pair_of)))
    pair_flip = rng.choice(in_pairs, n_noisy // 2, replace=False)
    given[pair_flip] = [pair_of[c] for c in true[pair_flip]]
    rest = np.setdiff1d(np.arange(n_clean), pair_flip)
    rand_flip = rng.choice(rest, n_noisy - n_noisy // 2, replace=False)
    for i in rand_flip:
        given[i] = rng.choice([c for c in kept_classes if c != true[i]])
    noisy = np.zeros(n_clean, dtype=bool)
    noisy[pair_flip] = noisy[rand_flip] = True

    # foreign samples: held-out classes, given a random kept label
    f_idx = rng.choice(held, n_foreign, replace=False)
    f_imgs, f_true = images[f_idx], labels[f_idx]
    f_given = rng.choice(kept_classes, n_foreign)

    # a tight cluster of foreign samples: slightly shifted checkerboards with pixel noise, one label
    yy, xx = np.mgrid[:28, :28]
    shift = rng.integers(0, 3, (cluster_size, 2))
    boards = np.stack([np.where((((yy + a) // 7) + ((xx + b) // 7)) % 2 == 0, 220, 30) for a, b in shift])
    c_imgs = np.clip(boards + rng.normal(0, 20, (cluster_size, 28, 28)), 0, 255).astype(np.uint8)
    c_given = np.full(cluster_size, kept_classes[rng.integers(len(kept_classes))])

    # near-copies of clean samples: small pixel noise
    src = rng.choice(n_clean, n_copies, replace=False)
    d_imgs = np.clip(imgs[src].astype(np.float64) + rng.normal(0, 4, (n_copies, 28, 28)), 0, 255).astype(np.uint8)

    all_imgs = np.concatenate([imgs, f_imgs, c_imgs, d_imgs])
    given_all = np.concatenate([given, f_given, c_given, given[src]])
    true_all = np.concatenate([true, f_true, np.full(cluster_size, -1), true[src]])
    kinds = np.repeat([0, 1, 2, 3], [n_clean, n_foreign, cluster_size, n_copies])
    copy_of = np.concatenate([np.full(n_clean + n_foreign + cluster_size, -1), src])
    order = rng.permutation(n)
    inv = np.argsort(order)
    name = np.asarray(names + ["checkerboard"], dtype=object)
    meta = pd.DataFrame({
        "corner_patch": np.concatenate([patch, np.zeros(n_foreign + cluster_size, bool), patch[src]]),
        "stripe": rng.random(n) < 0.3,
    })
    feats = pixel_pca(all_imgs, dims, seed)
    return Planted(
        images=all_imgs[order], features=feats[order], labels=name[given_all][order],
        true_labels=name[true_all][order], metadata=meta.iloc[order].reset_index(drop=True),
        is_noisy=np.concatenate([noisy, np.zeros(n_foreign + cluster_size, bool), noisy[src]])[order],
        is_foreign=(kinds == 1)[order], is_cluster=(kinds == 2)[order],
        copy_of=np.where(copy_of >= 0, inv[np.maximum(copy_of, 0)], -1)[order],
        classes=[names[c] for c in kept_classes])
