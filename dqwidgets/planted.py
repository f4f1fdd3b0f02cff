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


# planted covariate shift (issue #14, accuracy without labels): the same images under corruptions of
# rising severity, levels at severities 1-5 (bench/bench_training.py, tests/test_atc_planted_shift.py)
SHIFT_LEVELS = {
    "blur": [0.6, 1.0, 1.5, 2.0, 3.0],  # Gaussian sigma, pixels
    "noise": [15, 30, 50, 75, 110],  # Gaussian std, grey levels
    "contrast": [0.7, 0.5, 0.35, 0.25, 0.15],  # factor towards the image mean
    "rotation": [8, 15, 25, 35, 50],  # degrees, each image turned left or right at random
}


def shift_images(images: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """``images`` (uint8 N x H x W) under one corruption of ``SHIFT_LEVELS``: ``"blur"`` (Gaussian,
    sigma ``level``), ``"noise"`` (additive Gaussian, std ``level`` grey levels), ``"contrast"``
    (each image pulled towards its mean by the factor ``level``) or ``"rotation"`` (``level``
    degrees, the sign drawn per image); the labels stay those of the originals."""
    from scipy import ndimage

    x = images.astype(np.float32)
    if kind == "blur":
        x = ndimage.gaussian_filter(x, sigma=(0, level, level))
    elif kind == "noise":
        x = x + rng.normal(0, level, x.shape)
    elif kind == "contrast":
        m = x.mean((1, 2), keepdims=True)
        x = m + (x - m) * level
    elif kind == "rotation":
        angles = rng.choice([-1, 1], len(x)) * level
        x = np.stack([ndimage.rotate(im, a, reshape=False, order=1, mode="constant") for im, a in zip(x, angles)])
    else:
        raise ValueError(f"shift_images: kind must be one of {tuple(SHIFT_LEVELS)}, got {kind!r}")
    return np.clip(x, 0, 255).astype(np.uint8)


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


# ---------------------------------------------------------------------------------------------
# Planted cases in every modality, for bench/bench_quality.py, bench/bench_review_effort.py and the
# flag tests. Each returns a PlantedCase: the raw data (images, texts or a table), the given labels
# and the truth; the features come from the project's own embedders (bench caches them).

@dataclass
class PlantedCase:
    name: str
    modality: str  # "image", "text" or "table"
    data: object  # list of uint8 arrays, list of str, or a DataFrame of feature columns
    labels: np.ndarray  # object: given (noisy) labels
    true_labels: np.ndarray  # object: the truth; None for foreign samples
    is_noisy: np.ndarray  # bool: label changed
    is_foreign: np.ndarray  # bool: from another source (no given class fits)
    copy_of: np.ndarray  # int64: position of the original for near-copies, -1 otherwise
    split: np.ndarray | None = None
    copy_kind: np.ndarray | None = None  # object: how the near-copy was made ("" otherwise)

    @property
    def in_copy_pair(self) -> np.ndarray:
        m = self.copy_of >= 0
        out = m.copy()
        out[self.copy_of[m]] = True
        return out

    @property
    def is_copy(self) -> np.ndarray:
        return self.copy_of >= 0

    def dataset(self, features=None):
        """A dq.Dataset of this case: of the raw data, or of ``features`` when given."""
        from dqwidgets.dataset import Dataset

        if features is not None:
            return Dataset.from_arrays(features, self.labels, split=self.split)
        if self.modality == "table":
            df = self.data.copy()
            df["label"] = self.labels
            return Dataset.from_dataframe(df, label="label")
        col = "image" if self.modality == "image" else "text"
        df = pd.DataFrame({col: list(self.data), "label": self.labels})
        if self.split is not None:
            df["split"] = self.split
        return Dataset.from_dataframe(df, **{col: col}, label="label",
                                      **({"split": "split"} if self.split is not None else {}))


def notebook_fashion_mnist(n: int = 5000) -> PlantedCase:
    """The planted data of notebooks/01-images-fashion-mnist.ipynb, draw for draw (n=5000 gives its
    4,229 images: 406 wrong labels, 156 foreign Sandal/Bag images, 79 near-copies)."""
    rng = np.random.default_rng(0)
    images, y, classes = load_fashion_mnist("train", n=n, seed=0)
    foreign_classes = [5, 8]
    is_foreign = np.isin(y, foreign_classes)
    keep = ~is_foreign | (rng.random(len(y)) < 0.15)
    images, y, is_foreign = images[keep], y[keep], is_foreign[keep]
    label_set = [c for i, c in enumerate(classes) if i not in foreign_classes]
    labels = np.array([classes[i] for i in y], dtype=object)
    labels[is_foreign] = rng.choice(label_set, size=is_foreign.sum())
    confusable = {"Shirt": "T-shirt/top", "T-shirt/top": "Shirt", "Pullover": "Coat", "Coat": "Pullover"}
    candidates = np.flatnonzero(~is_foreign)
    noisy = rng.choice(candidates, size=int(0.10 * len(candidates)), replace=False)
    true_labels = labels.copy()
    for j, i in enumerate(noisy):
        if j % 2 == 0 and labels[i] in confusable:
            labels[i] = confusable[labels[i]]
        else:
            labels[i] = rng.choice([c for c in label_set if c != labels[i]])
    src = rng.choice(candidates, size=int(0.02 * len(candidates)), replace=False)
    copies = np.roll(images[src], 1, axis=2).astype(np.int16) + rng.integers(-8, 9, size=images[src].shape)
    n_before = len(labels)
    images = np.concatenate([images, np.clip(copies, 0, 255).astype(np.uint8)])
    labels = np.concatenate([labels, labels[src]])
    true_labels = np.concatenate([true_labels, true_labels[src]]).astype(object)
    is_foreign = np.concatenate([is_foreign, is_foreign[src]])
    true_labels[is_foreign] = None
    split = rng.choice(["train", "test"], size=len(labels), p=[0.85, 0.15])
    copy_of = np.concatenate([np.full(n_before, -1), src]).astype(np.int64)
    return PlantedCase("notebook01_fashion_mnist", "image", list(images), labels, true_labels,
                       (labels != true_labels) & ~is_foreign, is_foreign, copy_of, split,
                       np.where(copy_of >= 0, "shift1+noise8", "").astype(object))


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def _resized(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR).resize(img.shape[::-1], Image.BILINEAR))


def image_near_copies(n: int = 2000, per_kind: int = 25, seed: int = 1) -> PlantedCase:
    """Fashion-MNIST images (all ten classes) plus near-copies of four kinds, ``per_kind`` each:
    re-encoded JPEG (quality 75), resized (to 20 px and back), shifted by 2 pixels, light noise (sd 6)."""
    rng = np.random.default_rng(seed)
    images, y, classes = load_fashion_mnist("train", n=n, seed=seed)
    kinds = ["jpeg", "resized", "shift2", "noise"]
    src = rng.choice(len(images), size=per_kind * len(kinds), replace=False)
    made = []
    for j, i in enumerate(src):
        kind, img = kinds[j // per_kind], images[i]
        if kind == "jpeg":
            made.append(_jpeg(img, 75))
        elif kind == "resized":
            made.append(_resized(img, 20))
        elif kind == "shift2":
            made.append(np.roll(img, (int(rng.choice([-2, 2])), int(rng.choice([-1, 1]))), axis=(0, 1)))
        else:
            made.append(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8))
    all_imgs = list(images) + made
    labels = np.array([classes[c] for c in np.concatenate([y, y[src]])], dtype=object)
    copy_of = np.concatenate([np.full(len(images), -1), src]).astype(np.int64)
    kind_col = np.array([""] * len(images) + [kinds[j // per_kind] for j in range(len(src))], dtype=object)
    return PlantedCase("fashion_mnist_near_copies", "image", all_imgs, labels, labels.copy(),
                       np.zeros(len(labels), bool), np.zeros(len(labels), bool), copy_of, None, kind_col)


def _text_edit(text: str, rng: np.random.Generator) -> tuple[str, str]:
    kind = ["case", "whitespace", "punctuation"][int(rng.integers(3))]
    if kind == "case":
        return (text.upper() if rng.random() < 0.5 else text.lower()), kind
    if kind == "whitespace":
        return "  " + "  ".join(text.split()) + " \n", kind
    import re

    stripped = re.sub(r"[.,;:!?'\"()\-]", "", text)
    return (stripped if stripped != text else text + "!!"), kind


def rotten_tomatoes_case(n: int = 3000, noise_rate: float = 0.1, n_foreign: int = 156, copy_rate: float = 0.02,
                         seed: int = 0) -> PlantedCase:
    """``n`` Rotten Tomatoes snippets labelled fresh/rotten with ``noise_rate`` of the labels flipped,
    ``n_foreign`` plot synopses of the same file (another kind of text, each other's neighbours) given
    random fresh/rotten labels, and near-copies by case, whitespace or punctuation edits."""
    from dqwidgets.examples import load_rotten_tomatoes

    rng = np.random.default_rng(seed)
    df = load_rotten_tomatoes()
    reviews = df[df["label"] != "plot"].sample(n=n, random_state=seed)
    plots = df[df["label"] == "plot"].sample(n=n_foreign, random_state=seed)
    texts = reviews["text"].astype(str).tolist()
    true = reviews["label"].to_numpy(object)
    given = true.copy()
    flip = rng.choice(n, int(round(noise_rate * n)), replace=False)
    given[flip] = np.where(given[flip] == "fresh", "rotten", "fresh")
    src = rng.choice(n, int(round(copy_rate * n)), replace=False)
    edits = [_text_edit(texts[i], rng) for i in src]
    all_texts = texts + plots["text"].astype(str).tolist() + [e[0] for e in edits]
    labels = np.concatenate([given, rng.choice(["fresh", "rotten"], n_foreign), given[src]]).astype(object)
    true_all = np.concatenate([true, np.full(n_foreign, None, object), true[src]]).astype(object)
    is_foreign = np.concatenate([np.zeros(n, bool), np.ones(n_foreign, bool), np.zeros(len(src), bool)])
    copy_of = np.concatenate([np.full(n + n_foreign, -1), src]).astype(np.int64)
    kind = np.array([""] * (n + n_foreign) + [e[1] for e in edits], dtype=object)
    return PlantedCase("rotten_tomatoes", "text", all_texts, labels, true_all,
                       (labels != true_all) & ~is_foreign, is_foreign, copy_of, None, kind)


def digits_table_case(noise_rate: float = 0.1, n_foreign: int = 40, copy_rate: float = 0.02,
                      seed: int = 0) -> PlantedCase:
    """scikit-learn's digits as a table of 64 numeric columns (1,797 rows, ten classes), with
    ``noise_rate`` random label flips, a block of ``n_foreign`` rows from another table with the same
    schema (Fashion-MNIST pullovers, coats and shirts averaged down to 8 x 8 cells of 0-16: a batch from
    another source pasted under the same headers, given random digit labels), and near-copies (rows
    with a little noise on a few cells)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    d = load_digits()
    X, y = d.data.astype(np.float64), d.target
    n = len(X)
    true = np.array([str(c) for c in y], dtype=object)
    given = true.copy()
    flip = rng.choice(n, int(round(noise_rate * n)), replace=False)
    given[flip] = [str(rng.choice([c for c in range(10) if str(c) != true[i]])) for i in flip]
    imgs, fy, _ = load_fashion_mnist("train", n=4000, seed=seed)
    pick = rng.choice(np.flatnonzero(np.isin(fy, [2, 4, 6])), n_foreign, replace=False)
    cells = imgs[pick].astype(np.float64)[:, 2:26, 2:26].reshape(n_foreign, 8, 3, 8, 3).mean((2, 4))
    F = np.round(cells / 255.0 * 16.0).reshape(n_foreign, 64)
    src = rng.choice(n, int(round(copy_rate * n)), replace=False)
    C = X[src].copy()
    for row in C:
        cols = rng.choice(64, 3, replace=False)
        row[cols] = np.clip(row[cols] + rng.choice([-1, 1], 3), 0, 16)
    table = pd.DataFrame(np.vstack([X, F, C]), columns=[f"pixel_{i // 8}_{i % 8}" for i in range(64)])
    labels = np.concatenate([given, np.array([str(c) for c in rng.integers(0, 10, n_foreign)]), given[src]])
    true_all = np.concatenate([true, np.full(n_foreign, None, object), true[src]]).astype(object)
    is_foreign = np.concatenate([np.zeros(n, bool), np.ones(n_foreign, bool), np.zeros(len(src), bool)])
    copy_of = np.concatenate([np.full(n + n_foreign, -1), src]).astype(np.int64)
    return PlantedCase("digits_table", "table", table, labels.astype(object), true_all,
                       (labels != true_all) & ~is_foreign, is_foreign, copy_of, None,
                       np.where(copy_of >= 0, "3 cells +-1", "").astype(object))


CASES = {"notebook01_fashion_mnist": notebook_fashion_mnist, "fashion_mnist_near_copies": image_near_copies,
         "rotten_tomatoes": rotten_tomatoes_case, "digits_table": digits_table_case}
